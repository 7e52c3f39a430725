"""Is a recorded process still there? Used by the store's gc and the Label Studio server."""

from __future__ import annotations

import contextlib
import os


def pid_alive(pid) -> bool:
    """True while ``pid`` runs. A zombie (killed, not yet reaped) counts as gone; if it is our
    child it is reaped on the way, so it does not linger."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust kill(0)
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True
