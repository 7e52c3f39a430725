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

from curation.compiled import njit
from curation.dedup.canonical import GOLDEN

_C1, _C2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
EMPTY = np.uint32(0xFFFFFFFF)


def oph_signatures(cps: np.ndarray, lens: np.ndarray, n: int, probes: np.ndarray) -> np.ndarray:
    """(len(lens), bins) uint32 signatures of the texts ``cps`` (concatenated canonical code
    points) of lengths ``lens``; ``probes``: the (tries, bins) probe table (``core._probe_table``)."""
    return _signatures(np.ascontiguousarray(cps, dtype=np.uint32), np.asarray(lens, dtype=np.int64), int(n),
                       np.ascontiguousarray(probes, dtype=np.int64))


@njit(cache=True, nogil=True)
def _signatures(cps, lens, n, probes):  # pragma: no cover - compiled
    tries, k = probes.shape
    sig = np.full((len(lens), k), EMPTY, dtype=np.uint32)
    filled = np.zeros(k, dtype=np.bool_)
    win = np.zeros(n, dtype=np.uint64)
    start = 0
    for t in range(len(lens)):
        L = lens[t]
        row = sig[t]
        m = L - n + 1
        if L > 0 and m < 1:
            m = 1  # a short text: one window, padded with U+0000
        for s in range(m):
            h = np.uint64(0)
            for q in range(n):
                c = np.uint64(cps[start + s + q]) if s + q < L else np.uint64(0)
                h = h * GOLDEN + c
            h ^= h >> np.uint64(30)
            h *= _C1
            h ^= h >> np.uint64(27)
            h *= _C2
            h ^= h >> np.uint64(31)
            b = np.int64(((h >> np.uint64(32)) * np.uint64(k)) >> np.uint64(32))
            v = np.uint32(h & np.uint64(0xFFFFFFFF))
            if v < row[b]:
                row[b] = v
        start += L
        # densify: an empty bin copies the first filled one along its probe sequence
        any_filled = False
        low = EMPTY
        for j in range(k):
            filled[j] = row[j] != EMPTY
            if filled[j]:
                any_filled = True
                if row[j] < low:
                    low = row[j]
        if not any_filled:
            continue
        for j in range(k):
            if filled[j]:
                continue
            got = False
            for r in range(tries):
                src = probes[r, j]
                if filled[src]:
                    row[j] = row[src]
                    got = True
                    break
            if not got:
                row[j] = low
    return sig
