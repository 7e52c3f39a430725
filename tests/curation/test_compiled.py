"""``curation.compiled``: where numba caches the compiled kernels."""

from __future__ import annotations

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
