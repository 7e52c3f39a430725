"""Which texts of a chunk repeat a line, in one compiled pass (numba), for ``LineRepetitionFilter``.

The filter removes nothing from a text whose non-blank lines (stripped) are all distinct (its
fractions are then 0), and that is nearly every document: a QA record is a question line and an
answer line. Telling that apart was ~2 us a document in Python (split, strip, a set), ~2 s of a
million-record build; here each line is hashed in place from the chunk's code points and flags
(``_text.chunk_features``: the same whitespace class as ``str.strip``), a few ns a character.

A hash never decides a removal: a text with two equal line hashes (a repeat, or a collision) goes
to the exact Python test, so every decision and reason is the one the Python path gives.
"""

from __future__ import annotations

import numpy as np

from curation.compiled import njit

_FNV_PRIME = np.uint64(0x100000001B3)


def repeated_lines(cp: np.ndarray, flags: np.ndarray, starts: np.ndarray, ends: np.ndarray, ws: int) -> np.ndarray:
    """Per text ``cp[starts[i]:ends[i]]`` (its character classes in ``flags``): could two of its
    non-blank lines, stripped of the characters with bit ``ws``, be equal. False is certain; True is
    a repeat or (rarely) a hash collision."""
    return _repeated_lines(np.ascontiguousarray(cp, dtype=np.uint32), np.ascontiguousarray(flags),
                           np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64), int(ws))


@njit(cache=True, nogil=True)
def _repeated_lines(cp, flags, starts, ends, ws):  # pragma: no cover - compiled
    out = np.zeros(len(starts), dtype=np.bool_)
    hashes = np.empty(64, dtype=np.uint64)
    for t in range(len(starts)):
        start, end = starts[t], ends[t]
        k = 0
        i = start
        while i <= end:  # the line [i, j): up to the next "\n" or the end of the text
            j = i
            while j < end and cp[j] != 10:
                j += 1
            a, b = i, j
            while a < b and flags[a] & ws:
                a += 1
            while b > a and flags[b - 1] & ws:
                b -= 1
            if b > a:
                h = np.uint64(0xCBF29CE484222325) ^ np.uint64(b - a)
                for q in range(a, b):
                    h = (h ^ np.uint64(cp[q])) * _FNV_PRIME
                if k == len(hashes):
                    grown = np.empty(2 * k, dtype=np.uint64)
                    grown[:k] = hashes[:k]
                    hashes = grown
                hashes[k] = h
                k += 1
            i = j + 1
        if k > 1:
            hs = np.sort(hashes[:k])
            for q in range(1, k):
                if hs[q] == hs[q - 1]:
                    out[t] = True
                    break
    return out

