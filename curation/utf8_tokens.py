"""The approximate token count (``curation.tokens``) of Arrow string rows, read from their UTF-8
bytes in one compiled pass (numba): the Table-1 stats count every kept text at publish, and
decoding the rows to Python strings and code-point arrays first cost more than the counting."""

from __future__ import annotations

import numpy as np

from curation.compiled import njit


def utf8_token_total(data: np.ndarray, offsets: np.ndarray, classes: np.ndarray) -> int:
    """Tokens of the rows ``data[offsets[r]:offsets[r + 1]]`` (uint8 UTF-8, int64 offsets), summed;
    ``classes``: ``curation.tokens._classes()`` (0 space, 1 letter or digit, 2 other)."""
    return int(_utf8_token_total(data, offsets, classes))


@njit(cache=True, nogil=True)
def _utf8_token_total(data, offsets, classes):  # pragma: no cover - compiled
    """The approximate token count of the UTF-8 rows ``data[offsets[r]:offsets[r + 1]]``, summed:
    each "other" character and each run of letters and digits (a row's first character starts
    one, as in ``_approx_codepoints``). Arrow strings are valid UTF-8, so the decoding does not check."""
    total = 0
    for r in range(len(offsets) - 1):
        i, end = offsets[r], offsets[r + 1]
        in_run = False
        while i < end:
            b = np.int64(data[i])
            if b < 0x80:
                cp, i = b, i + 1
            elif b < 0xE0:
                cp, i = ((b & 0x1F) << 6) | (data[i + 1] & 0x3F), i + 2
            elif b < 0xF0:
                cp, i = ((b & 0x0F) << 12) | ((data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F), i + 3
            else:
                cp = (((b & 0x07) << 18) | ((data[i + 1] & 0x3F) << 12) | ((data[i + 2] & 0x3F) << 6)
                      | (data[i + 3] & 0x3F))
                i += 4
            c = classes[cp]
            if c == 1:  # _ALNUM
                total += not in_run
                in_run = True
            else:
                total += c == 2  # _OTHER
                in_run = False
    return total
