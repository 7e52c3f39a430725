"""Hand-run benchmark of stage B in bucket tasks (issue #17) against today's one task.

    .venv/bin/python benchmarks/dedup_buckets_bench.py --raw ../shared/data/raw [--scales 1,4] [--tasks 1,4,16]

For each scale r the pretraining corpus is replicated r times (``pipeline_scaling.replicate``:
unrelated replicas with the same duplicate structure) and built once (``cumed build``, 2 workers,
in a subprocess). Then, on that build's signatures, each configuration runs in a fresh
subprocess: ``NearDupClusters`` (today's stage B, one task) and ``bucket_stages`` with T tasks.

- wall s: the configuration's stages through ``cumed build``'s local executor with 2 workers.
- per-task peak: every task again, alone, in a fresh forkserver process (interpreter +
  numpy/pyarrow/datatrove loaded): ``VmHWM`` from ``/proc/self/status``
  after resetting it at the task's start (not ``ru_maxrss``, which survives fork and exec). The
  figure is the whole process's peak RSS, the loaded interpreter included; "above start" is the
  task's own part.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _forked(pool, step, rank=0, world_size=1):
    from curation.dedup.buckets import run_measured

    return pool.apply(run_measured, (step, rank, world_size))


def child(work: str, tasks: int) -> None:
    from curation.build.executors import make_executor, quiet_datatrove
    from curation.dedup import NearDupClusters, read_decisions
    from curation.dedup.buckets import bucket_stages

    quiet_datatrove()
    w = Path(work)
    sigs = str(w / "signatures")
    out = w / f"bench_b{tasks}"

    def stages():
        if tasks == 0:  # today's stage B
            return [("one", "", [NearDupClusters(sigs, str(out))], 1)]
        return bucket_stages(sigs, str(out), tasks)

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    for key, _, pipe, n in stages():
        make_executor("local", pipe, n, min(2, n), out / "logs" / key).run()  # as ``cumed build`` runs it
    wall = time.perf_counter() - t0
    decisions = sorted(read_decisions(str(out)))
    shutil.rmtree(out, ignore_errors=True)
    peaks = {}
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["curation.dedup.buckets"])
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        for key, _, (step,), n in stages():
            peaks[key.split("-")[1] if "-" in key else key] = [_forked(pool, step, t, n) for t in range(n)]
    shutil.rmtree(out, ignore_errors=True)
    mb = lambda b: round(b / 2**20)  # noqa: E731
    print(json.dumps({
        "tasks": tasks, "wall_s": round(wall, 2), "decisions": len(decisions),
        "decisions_digest": hash(tuple(decisions)) & 0xFFFFFFFF,
        "peak_MB": {k: mb(max(p for p, _ in v)) for k, v in peaks.items()},
        "above_start_MB": {k: mb(max(g for _, g in v)) for k, v in peaks.items()},
    }))


def main():
    from pipeline_scaling import replicate, run_sampled

    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", default=str(ROOT.parent / "shared/data/raw"))
    ap.add_argument("--scales", default="1,4")
    ap.add_argument("--tasks", default="1,4,16")
    ap.add_argument("--tmp", default=tempfile.gettempdir())
    ap.add_argument("--child", nargs=2)
    a = ap.parse_args()
    if a.child:
        return child(a.child[0], int(a.child[1]))
    py, results = sys.executable, []
    for scale in [int(s) for s in a.scales.split(",")]:
        root = Path(a.tmp) / f"cumed_buckets_{scale}"
        shutil.rmtree(root, ignore_errors=True)
        recipe, mb = replicate(Path(a.raw), root / "raw", scale)
        env = {**os.environ, "CUMED_CACHE": str(root / "cache"), "PYTHONHASHSEED": "0"}
        _, _, out = run_sampled([py, str(ROOT / "benchmarks" / "pipeline_scaling.py"), "--child", "build", str(recipe),
                                 str(root / "raw"), str(root / "work"), str(root / "store"), "2"], env)
        work = json.loads(out.strip().splitlines()[-1])["work"]
        for tasks in [0] + [int(t) for t in a.tasks.split(",")]:
            r = subprocess.run([py, __file__, "--child", work, str(tasks)], env=env, capture_output=True, text=True)
            res = {"scale": scale, **json.loads(r.stdout.strip().splitlines()[-1])}
            print(json.dumps(res), flush=True)
            results.append(res)
        shutil.rmtree(root, ignore_errors=True)
    Path(a.tmp, "cumed_buckets_results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
