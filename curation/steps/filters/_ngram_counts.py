"""Exact character n-gram counts of many texts at once, compiled (numba).

The repetition filter proves most short documents kept from two numbers per text: the count of
its most frequent 3-gram and the characters covered by runs of repeated 3-grams
(``repetition._short_bounds`` says why they bound every n-gram check). In numpy those came from
one stable sort of a whole chunk's 3-grams; here each text gets a small hash table instead, one
pass over its characters: on 250k QA records of ~150 characters the filter took 2.8 s of CPU,
most of it that sort and the Python around it.

Nothing is hashed lossily: a 3-gram is its three code points side by side (3 x 21 bits), and a
longer n-gram found under an equal hash is compared character by character, so every count is
the exact count the pure-Python definition gives.

Texts are given as one array of code points (``c``) with each text's ``[starts[i], ends[i])``.
"""

from __future__ import annotations

import numpy as np

from curation.compiled import njit, table_bits
from curation.dedup.canonical import GOLDEN


def trigram_bounds(c: np.ndarray, starts: np.ndarray, ends: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Per text: (count of its most frequent 3-gram, characters covered by ``window`` consecutive
    3-grams that each occurred earlier in the text; 0 when ``window`` < 1). Texts have >= 3
    characters. The same numbers as ``repetition._trigram_bounds``."""
    longest = int((ends - starts).max()) if len(starts) else 0
    return _trigram_bounds(c.astype(np.uint32, copy=False), starts.astype(np.int64, copy=False),
                           ends.astype(np.int64, copy=False), int(window), table_bits(longest))


def top_counts(c: np.ndarray, starts: np.ndarray, ends: np.ndarray, ns: tuple[int, ...]) -> np.ndarray:
    """``out[i, k]``: how often the most frequent ``ns[k]``-gram of text i occurs (0 when the text
    is shorter than ``ns[k]``)."""
    longest = int((ends - starts).max()) if len(starts) else 0
    return _top_counts(c.astype(np.uint32, copy=False), starts.astype(np.int64, copy=False),
                       ends.astype(np.int64, copy=False), np.asarray(ns, dtype=np.int64), table_bits(longest))


@njit(cache=True, nogil=True)
def _trigram_bounds(c, starts, ends, window, bits):  # pragma: no cover - compiled
    n = len(starts)
    top = np.zeros(n, dtype=np.int64)
    covered = np.zeros(n, dtype=np.int64)
    size = 1 << bits
    mask = size - 1
    shift = np.uint64(64 - bits)
    keys = np.zeros(size, dtype=np.uint64)
    counts = np.zeros(size, dtype=np.int64)
    stamp = np.zeros(size, dtype=np.int64)  # text index + 1 of a slot's key: no clearing between texts
    for t in range(n):
        s, m = starts[t], ends[t] - starts[t] - 2
        best, run, cov, cov_end = 0, 0, 0, 0
        for j in range(m):
            k = (np.uint64(c[s + j]) << np.uint64(42)) | (np.uint64(c[s + j + 1]) << np.uint64(21)) | np.uint64(c[s + j + 2])
            h = np.int64((k * GOLDEN) >> shift)
            while stamp[h] == t + 1 and keys[h] != k:
                h = (h + 1) & mask
            if stamp[h] != t + 1:
                stamp[h], keys[h], counts[h] = t + 1, k, 1
                run = 0
            else:
                counts[h] += 1
                run += 1
            if counts[h] > best:
                best = counts[h]
            if window >= 1 and run >= window:
                # the n0-gram starting at j - window + 1 (n0 = window + 2) repeats only 3-grams
                # seen before: its characters [j - window + 1, j + 3) count, each once
                lo = j - window + 1
                if lo < cov_end:
                    lo = cov_end
                cov += j + 3 - lo
                cov_end = j + 3
        top[t] = best
        covered[t] = cov
    return top, covered


@njit(cache=True, nogil=True)
def _top_counts(c, starts, ends, ns, bits):  # pragma: no cover - compiled
    out = np.zeros((len(starts), len(ns)), dtype=np.int64)
    size = 1 << bits
    mask = size - 1
    shift = np.uint64(64 - bits)
    hashes = np.zeros(size, dtype=np.uint64)
    where = np.zeros(size, dtype=np.int64)  # start of the slot's n-gram in ``c``
    counts = np.zeros(size, dtype=np.int64)
    stamp = np.zeros(size, dtype=np.int64)
    tick = 0
    base = np.uint64(1_000_003)
    for t in range(len(starts)):
        s, L = starts[t], ends[t] - starts[t]
        for q in range(len(ns)):
            n = ns[q]
            if L < n:
                continue
            tick += 1
            best = 0
            for j in range(L - n + 1):
                p = s + j
                hv = np.uint64(0)
                for i in range(n):
                    hv = hv * base + np.uint64(c[p + i])
                h = np.int64((hv * GOLDEN) >> shift)
                while stamp[h] == tick:
                    if hashes[h] == hv:
                        same = True
                        o = where[h]
                        for i in range(n):
                            if c[o + i] != c[p + i]:
                                same = False
                                break
                        if same:
                            break
                    h = (h + 1) & mask
                if stamp[h] != tick:
                    stamp[h], hashes[h], where[h], counts[h] = tick, hv, p, 1
                else:
                    counts[h] += 1
                if counts[h] > best:
                    best = counts[h]
            out[t, q] = best
    return out
