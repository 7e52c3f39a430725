"""Densified one-permutation-hashing signatures of many canonical texts, compiled (numba): one pass
per text, where numpy made ~20 passes over a whole batch (the n multiply-adds of every window, the
splitmix64 finish, the bin of each, a scatter-minimum, then the densification's probes).

Bit for bit ``core.signatures``' definition (its docstring and ``_densify``'s say what they are):

- every length-n window of a text (a text shorter than n but not empty: one window, padded with
  U+0000) is hashed as ``canonical.window_hashes`` does: ``c0 * G^(n-1) + ... + c(n-1)`` modulo
  2^64 (G: ``canonical.GOLDEN``), then the splitmix64 finaliser;
- its high 32 bits pick the bin (multiply-shift: ``hi * bins >> 32``), its low 32 bits compete for
  the bin's minimum;
- an empty bin (still ``EMPTY``, which a window whose low half is ``EMPTY`` cannot tell apart, as
  before) takes the value of the first bin along its probe sequence (``probes[t, j]``, t = 0, 1,
  ...) that was filled by a window; if none of the tries finds one, the minimum of the filled
  bins; a text with no window keeps every bin ``EMPTY``.
"""

from __future__ import annotations

import numpy as np

from curation.compiled import frozen, njit, splitmix64
from curation.dedup.canonical import GOLDEN

EMPTY = np.uint32(0xFFFFFFFF)


def oph_signatures(cps: np.ndarray, lens: np.ndarray, n: int, probes: np.ndarray) -> np.ndarray:
    """(len(lens), bins) uint32 signatures of the texts ``cps`` (concatenated canonical code
    points) of lengths ``lens``; ``probes``: the (tries, bins) probe table (``core._probe_table``)."""
    # each bin's probe sequence contiguous, one byte a probe (bins <= 256): 7 KB, in the L1 cache
    probes = np.asarray(probes)
    seq = frozen(probes.T, np.uint8 if probes.shape[1] <= 256 else np.int64)
    return _signatures(frozen(cps, np.uint32), frozen(lens, np.int64), int(n), seq)


def warm() -> None:
    """Load the kernel (``curation.compiled.preload``), with the argument types of a build's calls
    (built here: importing ``core`` would make an import cycle)."""
    oph_signatures(np.zeros(5, np.uint32), np.array([5]), 5, np.zeros((1, 2), np.int64))


@njit(cache=True, nogil=True, inline="always")
def _put(row, h, k):  # pragma: no cover - compiled
    """One window's hash into its bin: the splitmix64 finish, then the bin's minimum."""
    h = splitmix64(h)
    b = np.int64(((h >> np.uint64(32)) * np.uint64(k)) >> np.uint64(32))
    row[b] = min(np.uint32(h & np.uint64(0xFFFFFFFF)), row[b])  # no branch: 250k QA records 0.25 -> 0.16 s


@njit(cache=True, nogil=True)
def _signatures(cps, lens, n, probes):  # pragma: no cover - compiled
    k, tries = probes.shape  # probes[j]: bin j's probe sequence
    sig = np.full((len(lens), k), EMPTY, dtype=np.uint32)
    filled = np.zeros(k, dtype=np.bool_)
    top = np.uint64(1)  # G^(n-1): the weight of the character that leaves the window
    for _ in range(n - 1):
        top *= GOLDEN
    start = 0
    for t in range(len(lens)):
        L = lens[t]
        row = sig[t]
        if L >= n:
            # the first window's polynomial, then each next one rolled from it: subtract the
            # leaving character's term, shift by G, add the entering one (the same ring arithmetic
            # as n multiply-adds per window, so the same hashes)
            h = np.uint64(0)
            for q in range(n):
                h = h * GOLDEN + np.uint64(cps[start + q])
            _put(row, h, k)
            for s in range(1, L - n + 1):
                h = (h - np.uint64(cps[start + s - 1]) * top) * GOLDEN + np.uint64(cps[start + s + n - 1])
                _put(row, h, k)
        elif L > 0:  # a short text: one window, padded with U+0000
            h = np.uint64(0)
            for q in range(n):
                h = h * GOLDEN + (np.uint64(cps[start + q]) if q < L else np.uint64(0))
            _put(row, h, k)
        start += L
        # densify: an empty bin copies the first filled one along its probe sequence
        count, low = 0, EMPTY
        for j in range(k):
            filled[j] = row[j] != EMPTY
            count += filled[j]
            low = min(low, row[j])  # EMPTY is the largest value: the minimum of the filled bins
        if count == 0 or count == k:
            continue
        for j in range(k):
            if filled[j]:
                continue
            v = low  # no filled bin within the tries
            for r in range(tries):
                src = probes[j, r]
                if filled[src]:
                    v = row[src]
                    break
            row[j] = v
    return sig
