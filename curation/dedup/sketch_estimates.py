"""The sketch estimate of many candidate pairs, compiled (numba), read straight from the signature
parts' memory-mapped sketch files: ``core.estimated_similarity`` of the pairs' rows, without
gathering the rows first.

Why: in numpy the candidates task copied both sides' rows out of the parts (``np.take``, two
arrays of 128 bytes a pair), compared them into a third and counted along each row: four passes
over ~400 bytes a pair, ~77 MB of temporaries per 200k pairs. Here each pair compares its two rows
where they lie, a part pair at a time: the kernel takes two plain arrays (a numba typed list of the
parts would cost ~0.75 s of compiling in every process that builds one).
"""

from __future__ import annotations

import numpy as np

from curation.compiled import njit


def sketch_estimates(sketches: list[np.ndarray], offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fraction of equal bins of the sketch rows of global documents ``a[k]`` and ``b[k]``;
    ``sketches[p]`` holds part p's rows, whose global indices start at ``offsets[p]`` (``offsets``:
    one more entry, the total). The same floats as ``core.estimated_similarity``."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    out = np.empty(len(a), dtype=np.float64)
    # an empty part shares its offset with the next: side="right" picks the part that has the row
    pa = np.searchsorted(offsets, a, side="right") - 1
    pb = np.searchsorted(offsets, b, side="right") - 1
    key = pa * len(sketches) + pb
    # pairs grouped by (part of a, part of b); a stable sort of small integers is a radix sort
    order = np.argsort(key.astype(np.int32 if len(sketches) ** 2 < 2**31 else np.int64), kind="stable")
    ks = key[order]
    cuts = [0, *(np.flatnonzero(ks[1:] != ks[:-1]) + 1).tolist(), len(ks)]
    for s, e in zip(cuts[:-1], cuts[1:]):
        if e == s:
            continue
        sel = order[s:e]
        p, q = int(pa[sel[0]]), int(pb[sel[0]])
        out[sel] = _estimates(_read_only(sketches[p]), _read_only(sketches[q]), a[sel] - offsets[p], b[sel] - offsets[q])
    return out


def warm() -> None:
    """Load the kernel (``curation.compiled.preload``)."""
    sketch_estimates([np.zeros((1, 1), np.uint8)], np.array([0, 1]), np.zeros(1, np.int64), np.zeros(1, np.int64))


def _read_only(s: np.ndarray) -> np.ndarray:
    """A C-contiguous read-only view: one compiled signature whether a part is memory-mapped (read
    only) or in memory."""
    v = np.ascontiguousarray(s).view()
    v.flags.writeable = False
    return v


@njit(cache=True, nogil=True)
def _estimates(rows_a, rows_b, a, b):  # pragma: no cover - compiled
    out = np.empty(len(a), dtype=np.float64)
    bins = rows_a.shape[1]
    for k in range(len(a)):
        ra, rb = rows_a[a[k]], rows_b[b[k]]
        same = 0
        for i in range(bins):
            if ra[i] == rb[i]:
                same += 1
        out[k] = same / bins
    return out
