"""The character-class counts of many texts in one compiled pass (numba), for ``_text.chunk_features``.

Per text, how many of its characters carry each of the 8 class bits of the flags table (WS, CJK,
DIGIT, SYMBOL, BAD, LATIN, ALNUM, GBLEAD: ``_text``), and every character's flags. In numpy
that was a gather, a text x flag-value ``bincount`` and a small matrix product per chunk, ~1 us a
QA record; the counting itself is a few nanoseconds a character.
"""

from __future__ import annotations

import numpy as np

from curation.compiled import njit


def class_counts(cp: np.ndarray, lens: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flags of every code point of ``cp``, counts ``[text, bit]``) for texts of ``lens`` laid end to end."""
    return _class_counts(np.ascontiguousarray(cp, dtype=np.uint32), np.asarray(lens, dtype=np.int64), table)


@njit(cache=True, nogil=True)
def _class_counts(cp, lens, table):  # pragma: no cover - compiled
    flags = np.empty(len(cp), dtype=table.dtype)
    counts = np.zeros((len(lens), 8), dtype=np.int64)
    start = 0
    for t in range(len(lens)):
        for i in range(start, start + lens[t]):
            f = table[cp[i]]
            flags[i] = f
            for b in range(8):
                counts[t, b] += (f >> b) & 1
        start += lens[t]
    return flags, counts
