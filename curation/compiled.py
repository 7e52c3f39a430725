"""numba, as cumed's compiled kernels import it (``from curation.compiled import njit``).

The kernels (``steps/filters/_ngram_counts.py``, ``steps/aho_corasick.py``, ``steps/span_lookup.py``,
``steps/pii_scan.py``, ``steps/opencc_changes.py``, ``dedup/oph.py``, ``dedup/sketch_estimates.py``,
``dedup/pair_overlaps.py``) are compiled on first use and cached (``cache=True``): next to their
source when that folder is writable (a checkout), else, where numba would fall back to a per-user
folder or fail ("cannot cache function": a read-only install run by a user without a home), under
``$CUMED_CACHE/numba``. Set ``NUMBA_CACHE_DIR`` to choose another place.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

if "NUMBA_CACHE_DIR" not in os.environ and not os.access(Path(__file__).parent, os.W_OK):
    from cumed.cache import cache_root

    os.environ["NUMBA_CACHE_DIR"] = str(cache_root() / "numba")

from numba import njit  # noqa: E402  (after the cache folder is chosen)

__all__ = ["frozen", "njit", "preload", "splitmix64", "table_bits"]

_C1, _C2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@njit(cache=True, nogil=True)
def splitmix64(h):  # pragma: no cover - compiled
    """The splitmix64 finaliser of one uint64, as ``canonical._mix64`` applies it to arrays: the
    kernels that hash windows (``span_lookup``, ``dedup.oph``) must give its hashes bit for bit."""
    h ^= h >> np.uint64(30)
    h *= _C1
    h ^= h >> np.uint64(27)
    h *= _C2
    h ^= h >> np.uint64(31)
    return h


def frozen(a, dtype) -> np.ndarray:
    """``a`` as a C-contiguous read-only array of ``dtype`` (a view where it already is one). numba
    compiles a kernel once per argument type, and read-only is part of the type: the same call with
    a writable array would load (or compile) a second version, which ``preload`` had not loaded."""
    v = np.ascontiguousarray(a, dtype=dtype).view()
    v.flags.writeable = False
    return v


def preload(*modules: str) -> None:
    """Load the cached kernels of ``modules`` into this process now: each module's ``warm()`` calls
    its kernels once on tiny inputs of the types a build passes.

    Why: loading is ~0.5 s the first time in a process (numba, LLVM, the cached code) and ~0.05 s a
    kernel after that. The local executor's workers are forked from the build's driver for every
    stage, so a kernel loaded in the driver before the stages start is loaded in each of them; one
    loaded in a task is loaded again in every worker of every stage that uses it."""
    import importlib

    for name in modules:
        importlib.import_module(name).warm()


def table_bits(n: int, min_bits: int = 4) -> int:
    """log2 of the size of an open-addressing hash table for up to ``n`` keys: the smallest power
    of two >= 2n, so the table is at most half full (probes stay short), and at least
    ``2 ** min_bits`` slots. The kernels' tables (n-gram counts, the automaton's edges, the
    evaluation-span keys) are all sized by this."""
    return max(min_bits, (2 * max(int(n), 1) - 1).bit_length())
