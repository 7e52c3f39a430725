"""``curation.compiled``: where numba caches the compiled kernels, and ``preload``: the driver loads
the dedup kernels once, and the workers it forks for each stage find them loaded (loading is
~0.5 s in a process that has none)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_read_only_install_caches_kernels_under_cumed_cache(tmp_path):
    """Where the kernels' source folder cannot be written (an install owned by another user, a
    read-only image on a cluster node), numba would fall back to a per-user folder or refuse to
    cache ("cannot cache function"): the kernels are cached under ``$CUMED_CACHE/numba`` instead,
    and a kernel compiled there runs. (Simulated: ``os.access`` answers "not writable".)"""
    code = (
        "import os, numpy as np\n"
        "os.access = lambda *a, **k: False\n"
        "from curation.steps.filters._class_counts import class_counts\n"
        "flags, counts = class_counts(np.array([0x4E00, 0x20], dtype=np.uint32), np.array([2]), np.zeros(0x110000, np.uint8))\n"
        "print(os.environ['NUMBA_CACHE_DIR'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(CUMED_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(tmp_path / "cache" / "numba")
    assert list((tmp_path / "cache" / "numba").rglob("*_class_counts*.nbi"))  # numba wrote its index there


def test_a_writable_checkout_caches_kernels_beside_their_source(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(CUMED_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(REPO))
    code = "import os, curation.compiled; print(os.environ.get('NUMBA_CACHE_DIR', '-'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "-" and not (tmp_path / "cache" / "numba").exists()


CHILD = r"""
import json, os
from curation.compiled import preload
from curation.dedup.buckets import DEDUP_KERNELS
from curation.dedup.oph import _signatures
from curation.dedup.pair_overlaps import _pair_overlaps
from curation.dedup.sketch_estimates import _estimates

kernels = (_signatures, _pair_overlaps, _estimates)
before = [len(k.signatures) for k in kernels]
preload(*DEDUP_KERNELS)
after = [len(k.signatures) for k in kernels]
r, w = os.pipe()
if os.fork() == 0:  # a worker, as the local executor forks them: loaded without calling anything
    os.write(w, json.dumps([len(k.signatures) for k in kernels]).encode())
    os._exit(0)
os.wait()
child = json.loads(os.read(r, 100))
# the build's own calls find the version preload loaded (a read-only array is another numba type)
import numpy as np
from curation.dedup.canonical import canonical_batch, overlaps, shingle_batch
from curation.dedup.core import DedupConfig, signatures
cps, lens = canonical_batch(["高血压患者应该怎么办，需要吃什么药", "高血压患者怎么办"])
signatures(cps, lens, DedupConfig())
overlaps(shingle_batch(cps, lens, 5), np.array([0]), np.array([1]), 5)
used = [len(k.signatures) for k in kernels]
print(json.dumps({"before": before, "after": after, "child": child, "used": used}))
"""


def test_preload_loads_the_kernels_that_forked_workers_inherit():
    out = json.loads(subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout)
    assert out["before"] == [0, 0, 0]
    assert all(n >= 1 for n in out["after"]) and out["child"] == out["after"]
    assert out["used"] == out["after"]  # no second version loaded by the real calls
