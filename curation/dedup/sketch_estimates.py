"""The sketch estimate of many candidate pairs, compiled (numba), read straight from the signature
parts' memory-mapped sketch files: ``core.estimated_similarity`` of the pairs' rows, without
gathering the rows first.

Why: in numpy the candidates task copied both sides' rows out of the parts (``np.take``, two
arrays of 128 bytes a pair), compared them into a third and counted along each row: four passes
over ~400 bytes a pair, and a pass per part to find which rows each part holds. Here each pair
compares its two rows where they lie (10M short QA records: the candidates stage 72 -> 52 s).

The parts go to the kernel as a numba typed list: building the first one in a process compiles
the list's code (~0.75 s, not cached on disk), which ``warm`` does in the build's driver before it
forks the workers. Callers pass pairs in chunks (``buckets.ESTIMATE_CHUNK``) and maps they drop
after each: the pages a memory-mapped part has served stay in the process's memory while it is
mapped, and pairs spread over every part touch most of them (all 40 parts of a 10M build at once:
a candidates worker at 1.9 GB).
"""

from __future__ import annotations

import numpy as np

from curation.compiled import njit


def sketch_estimates(sketches: list[np.ndarray], offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fraction of equal bins of the sketch rows of global documents ``a[k]`` and ``b[k]``;
    ``sketches[p]`` holds part p's rows, whose global indices start at ``offsets[p]`` (``offsets``:
    one more entry, the total). The same floats as ``core.estimated_similarity``."""
    from numba.typed import List

    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    # an empty part shares its offset with the next: side="right" picks the part that has the row
    pa = np.searchsorted(offsets, a, side="right") - 1
    pb = np.searchsorted(offsets, b, side="right") - 1
    # pairs in order of (part of a, part of b), so that the kernel takes a part out of the list only
    # when it changes: a typed list's item costs ~20 ns, twice a pair (1M records' candidates stage
    # 3.1 -> 4.0 s); a stable sort of small integers is a radix sort
    key = pa * len(sketches) + pb
    order = np.argsort(key.astype(np.int32) if len(sketches) ** 2 < 2**31 else key, kind="stable")
    return _estimates(List([_read_only(s) for s in sketches]), offsets, a, b, pa, pb, order)


def warm() -> None:
    """Load the kernel and compile the typed list's code (``curation.compiled.preload``)."""
    sketch_estimates([np.zeros((1, 1), np.uint8)], np.array([0, 1]), np.zeros(1, np.int64), np.zeros(1, np.int64))


def _read_only(s: np.ndarray) -> np.ndarray:
    """A C-contiguous read-only view: the parts of one typed list must be of one numba type, and
    memory-mapped sketch files are read-only."""
    v = np.ascontiguousarray(s).view()
    v.flags.writeable = False
    return v


@njit(cache=True, nogil=True)
def _estimates(parts, offsets, a, b, pa, pb, order):  # pragma: no cover - compiled
    out = np.empty(len(a), dtype=np.float64)
    bins = parts[0].shape[1]
    rows_a, rows_b, at_a, at_b = parts[0], parts[0], -1, -1
    for k in order:
        if pa[k] != at_a:
            at_a = pa[k]
            rows_a = parts[at_a]
        if pb[k] != at_b:
            at_b = pb[k]
            rows_b = parts[at_b]
        ra, rb = rows_a[a[k] - offsets[at_a]], rows_b[b[k] - offsets[at_b]]
        same = 0
        for i in range(bins):
            same += ra[i] == rb[i]
        out[k] = same / bins
    return out
