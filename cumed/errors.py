"""One exception type for mistakes a user can fix.

The CLI prints ``CumedError`` as one line (what, where, how to fix) and exits 1; anything
else is a bug and keeps its traceback.
"""


class CumedError(Exception):
    """A user-facing error: the message names the value, the place and the fix."""
