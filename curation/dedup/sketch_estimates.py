"""The sketch estimate of many candidate pairs, compiled (numba): what ``core.estimated_similarity``
computes for two stacks of gathered sketch rows, in one pass over each pair's two rows.

Why: numpy compared the stacks into a third array of booleans and counted along its rows
(``count_nonzero(axis=1)``, a slow reduction), ~0.7 s of a 1M-record candidates stage.

Why the rows are still gathered first (``buckets.SignatureFiles.sketch_rows``, one part's file
mapped at a time): comparing pairs where they lie, in every part's memory-mapped file at once,
made the kernel fault in the files whole (the kernel maps the pages around each one read: random
rows of 40 parts touched nearly all of their 1.1 GB), and a 10M build's candidates workers
peaked at 1.9 GB instead of 1.0.
"""

from __future__ import annotations

import numpy as np

from curation.compiled import frozen, njit


def sketch_estimates(rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
    """Fraction of equal bins of ``rows_a[k]`` and ``rows_b[k]`` (uint8 stacks of ``core.sketch``
    rows), the same floats as ``count_nonzero(rows_a == rows_b, axis=1) / bins``."""
    return _estimates(frozen(rows_a, np.uint8), frozen(rows_b, np.uint8))


def warm() -> None:
    """Load the kernel (``curation.compiled.preload``)."""
    sketch_estimates(np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.uint8))


@njit(cache=True, nogil=True)
def _estimates(rows_a, rows_b):  # pragma: no cover - compiled
    n, bins = rows_a.shape
    out = np.empty(n, dtype=np.float64)
    for k in range(n):
        same = 0
        for i in range(bins):
            same += rows_a[k, i] == rows_b[k, i]
        out[k] = same / bins
    return out
