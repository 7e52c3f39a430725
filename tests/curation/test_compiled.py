"""``curation.compiled.preload``: the driver loads the dedup kernels once, and the workers it forks
for each stage find them loaded (loading is ~0.5 s in a process that has none)."""

from __future__ import annotations

import json
import subprocess
import sys

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
print(json.dumps({"before": before, "after": after, "child": json.loads(os.read(r, 100))}))
"""


def test_preload_loads_the_kernels_that_forked_workers_inherit():
    out = json.loads(subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout)
    assert out["before"] == [0, 0, 0]
    assert all(n >= 1 for n in out["after"]) and out["child"] == out["after"]
