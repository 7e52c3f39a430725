"""The overlap of many pairs of shingled texts, compiled (numba): per pair, the Jaccard of the two
n-gram sets and the characters of each side that no shared n-gram covers (``canonical.overlaps``
defines them; this is how they are computed).

Why compiled: in numpy (one pass over many pairs) it was a stable sort of both sides' grams, a
cumulative sum, a binary search and a ``reduceat`` per pass over all of them, ~15 passes over
memory for what is one merge of two sorted lists and one walk of each text's positions. The
verify stage spent most of its time there (1M short QA records: ~1.5 s of its 3.4 s).

Per pair: both texts' grams are sorted and unique (``ShingleBatch``), so one merge finds the shared
ones, flagged in two scratch arrays; then each side's n-gram positions in text order (``inv``) give
the gaps between consecutive shared n-grams at s and s': with a shared n-gram imagined at -n
and at the text's length, a gap of ``max(s' - s - n, 0)`` characters (the lead before the first,
the tail after the last, or the whole text when none is shared).
"""

from __future__ import annotations

import numpy as np

from curation.compiled import frozen, njit


def pair_overlaps(grams: np.ndarray, gram_off: np.ndarray, inv: np.ndarray, pos_off: np.ndarray,
                  length: np.ndarray, a: np.ndarray, b: np.ndarray, n: int,
                  coverage: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(Jaccard, uncovered of a, longest uncovered run of a, the same two of b) of each pair
    (``a[k]``, ``b[k]``) of a ``ShingleBatch``'s arrays; without ``coverage`` the last four are zeros."""
    return _pair_overlaps(frozen(grams, np.uint32), frozen(gram_off, np.int64), frozen(inv, np.int32),
                          frozen(pos_off, np.int64), frozen(length, np.int64), frozen(a, np.int64),
                          frozen(b, np.int64), int(n), bool(coverage))


def warm() -> None:
    """Load the kernels (``curation.compiled.preload``), with the types of a ``ShingleBatch``'s
    arrays (built here: importing ``canonical`` would make an import cycle)."""
    one = np.array([0, 1, 2], np.int64)  # two texts of one gram and one position each
    pair_overlaps(np.array([1, 2], np.uint32), one, np.zeros(2, np.int32), one, np.array([5, 5], np.int64),
                  np.array([0]), np.array([1]), 5, True)


@njit(cache=True, nogil=True)
def _uncovered(inv, pos_off, length, t, shared, n):  # pragma: no cover - compiled
    """(uncovered characters, longest run of them) of text ``t`` whose shared grams are flagged
    in ``shared`` (by the text's own gram index)."""
    p0 = pos_off[t]
    prev, total, longest = -n, 0, 0
    for p in range(pos_off[t + 1] - p0):
        if shared[inv[p0 + p]]:
            gap = p - prev - n
            if gap > 0:
                total += gap
                if gap > longest:
                    longest = gap
            prev = p
    gap = length[t] - prev - n
    if gap > 0:
        total += gap
        if gap > longest:
            longest = gap
    return total, longest


@njit(cache=True, nogil=True)
def _pair_overlaps(grams, gram_off, inv, pos_off, length, a, b, n, coverage):  # pragma: no cover - compiled
    m = len(a)
    j = np.ones(m, dtype=np.float64)  # two empty texts: 1.0, as ``jaccard``
    ua, ra = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64)
    ub, rb = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64)
    most = 0
    for k in range(m):
        most = max(most, gram_off[a[k] + 1] - gram_off[a[k]], gram_off[b[k] + 1] - gram_off[b[k]])
    shared_a, shared_b = np.zeros(most, dtype=np.bool_), np.zeros(most, dtype=np.bool_)
    for k in range(m):
        x0, x1 = gram_off[a[k]], gram_off[a[k] + 1]
        y0, y1 = gram_off[b[k]], gram_off[b[k] + 1]
        if coverage:
            shared_a[: x1 - x0] = False
            shared_b[: y1 - y0] = False
        i, q, inter = x0, y0, 0
        while i < x1 and q < y1:
            gi, gq = grams[i], grams[q]
            if gi == gq:
                inter += 1
                if coverage:
                    shared_a[i - x0] = True
                    shared_b[q - y0] = True
                i += 1
                q += 1
            elif gi < gq:
                i += 1
            else:
                q += 1
        union = (x1 - x0) + (y1 - y0) - inter
        if union > 0:
            j[k] = inter / union
        if coverage:
            ua[k], ra[k] = _uncovered(inv, pos_off, length, a[k], shared_a, n)
            ub[k], rb[k] = _uncovered(inv, pos_off, length, b[k], shared_b, n)
    return j, ua, ra, ub, rb
