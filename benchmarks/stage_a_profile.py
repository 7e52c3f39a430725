"""Stage A throughput (issue #17): MB/s per core of every stage-A step and of the whole build,
a baseline commit against this working tree, measured in the same run.

    .venv/bin/python benchmarks/stage_a_profile.py [--raw ../shared/data/raw] [--baseline HEAD]
        [--reps 2] [--workers 2] [--no-build] [--new TREE] [--clock cpu|wall] [--out results.json]

The baseline is checked out with ``git worktree add --detach`` into a temporary folder (removed
afterwards); every measurement runs in its own subprocess whose ``sys.path`` starts at that tree,
alternating baseline / new (A/B/A/B), and the report gives medians.

1. Stage A in one process, one core: the build's stage-A pipeline for ``datasets/cumed-pretrain.yaml``
   (``RecipeReader`` -> ``build_steps`` -> near-dup signatures -> Parquet), all ``shards`` tasks one
   after the other. Per step: datatrove's own time stats (each step times its own work, not what
   the steps downstream do while it waits), read from the process's CPU clock (``--clock cpu``,
   the default: on a box shared with other jobs wall time per step is mostly the neighbours), as
   MB/s per core = the recipe's input MB (as read from disk) / the step's seconds: how fast the
   build would go if that step were all it did.
2. The whole build (``curation.build.build``, ``--workers``): wall seconds, CPU seconds of the
   whole process tree (``RUSAGE_CHILDREN``), stage spans from the task logs, the publish (the
   end of stage C to the end: statistics and store together, one pass since 8004e0a; an older
   tree's statistics pass is timed apart as collect_stats_s) and MB/s per core = MB / wall / workers.
   The store is a fresh copy of one that holds the relevance model (training it is the same
   ~20 s in both trees and not stage A's work); the decontamination index and lexicon caches
   (``CUMED_CACHE``, in the temporary folder) are warm for both. Both builds must publish the
   same content hash and the same stats (checked).

Peak memory per process: ``VmHWM`` from ``/proc/<pid>/status`` (the stage-A process and the
build's driver read their own at the end; the build's worker processes are sampled every 0.1 s
while they live).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "datasets/cumed-pretrain.yaml"


def vm_hwm_mb(pid: str | int = "self") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------------- children
def child_stage_a(tree: str, raw: str, tmp: str, clock: str = "cpu") -> dict:
    wall_clock = time.perf_counter
    if clock == "cpu":
        # datatrove's step timers (and the recipe reader's) read time.perf_counter: make them read
        # this process's CPU time instead, which a box shared with other jobs inflates far less
        time.perf_counter = time.process_time
    sys.path.insert(0, tree)
    os.chdir(tree)
    from cumed.store import Store
    from curation.build.reader import RecipeReader
    from curation.build.steps import build_steps, signature_options
    from curation.dedup import NearDupSignatures
    from curation.recipe import load_recipe
    from curation.rows import DOC_SCHEMA, RankParquetWriter, kept_adapter

    recipe = load_recipe(RECIPE, raw)
    mb = sum(f.stat().st_size for s in recipe.sources if s.enabled for f in s.files) / 1e6
    work = Path(tempfile.mkdtemp(dir=tmp, prefix="stage_a-"))
    steps = [RecipeReader(recipe, str(work / "counts")), *build_steps(recipe, work, Store(os.environ["BENCH_MODELS"]))]
    steps.append(NearDupSignatures(str(work / "signatures"), **signature_options(recipe.step("dedup"))))
    steps.append(RankParquetWriter(str(work / "filtered"), adapter=kept_adapter, schema=DOC_SCHEMA, compression="zstd"))
    t0, c0 = wall_clock(), time.process_time()
    for rank in range(recipe.shards):
        data = None
        for step in steps:
            data = step(data, rank=rank, world_size=recipe.shards)
        for _ in data:
            pass
    wall, cpu = wall_clock() - t0, time.process_time() - c0
    shutil.rmtree(work, ignore_errors=True)
    return {"MB": round(mb, 2), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "clock": clock, "VmHWM_MB": vm_hwm_mb(),
            "steps": {s.name: round(s.stats.time_stats.total, 3) for s in steps}}


def child_build(tree: str, raw: str, tmp: str, workers: int) -> dict:
    sys.path.insert(0, tree)
    os.chdir(tree)
    import curation.build.documents as documents
    from cumed.store import Store
    from curation.build import build

    spent = {}
    # trees before the one-pass publish computed the figures in a pass of their own (timed here);
    # later ones gather them while publishing (within publish_s)
    collect = getattr(documents, "collect_stats", None)

    def timed_collect(*a, **k):
        t = time.perf_counter()
        out = collect(*a, **k)
        spent["collect_stats_s"] = round(time.perf_counter() - t, 2)
        return out

    if collect is not None:
        documents.collect_stats = timed_collect
    root = Path(tempfile.mkdtemp(dir=tmp, prefix="build-"))
    shutil.copytree(os.environ["BENCH_MODELS"], root / "store")
    t0 = time.perf_counter()
    dv, stats = build(RECIPE, raw, Store(str(root / "store")), workers=workers, work_root=str(root / "work"),
                      progress=False)
    wall = time.perf_counter() - t0
    spans = _stage_spans(next((root / "work").iterdir()), t0_epoch=time.time() - wall)
    shutil.rmtree(root, ignore_errors=True)
    return {"wall_s": round(wall, 2), **spans, **spent, "driver_VmHWM_MB": vm_hwm_mb(),
            "content_hash": dv.manifest["content_hash"], "stats": dv.manifest["stats"]}


def _stage_spans(work: Path, t0_epoch: float) -> dict:
    """Seconds from the build's start to stage A's first log line, each stage's span (first log
    line to last completion file) and from stage C's last completion to the end (the publish)."""
    from datetime import datetime

    def first_log(d: Path) -> float:
        return min(datetime.strptime(f.read_text(errors="replace")[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp()
                   for f in (d / "logs").glob("*.log"))

    def last_done(d: Path) -> float:
        return max(f.stat().st_mtime for f in (d / "completions").glob("*"))

    logs = work / "logs"
    out = {"before_a_s": round(first_log(logs / "a") - t0_epoch, 2), "stage_a_s": round(last_done(logs / "a") - first_log(logs / "a"), 2)}
    b = [d for d in logs.iterdir() if d.name.startswith("b") and (d / "completions").is_dir()]
    if b:
        out["stage_b_s"] = round(max(map(last_done, b)) - min(map(first_log, b)), 2)
    if (logs / "c" / "completions").is_dir():
        out["stage_c_s"] = round(last_done(logs / "c") - first_log(logs / "c"), 2)
    out["publish_s"] = round(time.time() - max(last_done(d) for d in logs.iterdir() if (d / "completions").is_dir()), 2)
    return out


# ---------------------------------------------------------------------------------- parent
def run_child(args: list[str], env: dict) -> dict:
    """Run one child; sample the VmHWM of its descendants (the build's workers) while it lives."""
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen([sys.executable, __file__, "--child", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    workers: dict[int, float] = {}
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            for q in ps.children(recursive=True):
                hwm = vm_hwm_mb(q.pid)
                if hwm:
                    workers[q.pid] = max(workers.get(q.pid, 0), hwm)
        except psutil.Error:
            pass
        time.sleep(0.1)
    out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"child {args[0]} failed:\n{err[-4000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = json.loads(out.strip().splitlines()[-1])
    res["tree_cpu_s"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)
    if workers:
        res["workers_VmHWM_MB"] = round(max(workers.values()), 1)
    return res


def median_steps(runs: list[dict]) -> dict:
    return {k: statistics.median(r["steps"][k] for r in runs) for k in runs[0]["steps"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", default=str(ROOT.parent / "shared" / "data" / "raw"))
    ap.add_argument("--baseline", default="HEAD")
    ap.add_argument("--new", default=str(ROOT), help="the tree to compare (default: this working tree)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-build", action="store_true", help="stage A only")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="what the stage-A step timers read")
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", nargs="+")
    a = ap.parse_args()
    if a.child:
        kind, tree, raw, tmp, *rest = a.child
        res = child_stage_a(tree, raw, tmp, rest[0]) if kind == "stage_a" else child_build(tree, raw, tmp, int(rest[0]))
        print(json.dumps(res, ensure_ascii=False))
        return

    raw = str(Path(a.raw).resolve())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed run still removes its worktree
    tmp = Path(tempfile.mkdtemp(prefix="cumed-stage-a-"))
    base = tmp / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), a.baseline], check=True,
                   capture_output=True)
    trees = {"baseline": str(base), "new": str(Path(a.new).resolve())}
    results: dict = {"baseline": a.baseline, "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", a.baseline],
                                                                      capture_output=True, text=True).stdout.strip(),
                     "stage_a": {t: [] for t in trees}, "build": {t: [] for t in trees}}
    try:
        envs = {}
        for name, tree in trees.items():
            models = tmp / f"models-{name}"
            models.mkdir()
            envs[name] = {**os.environ, "CUMED_CACHE": str(tmp / "cache"), "BENCH_MODELS": str(models)}
            # warm-up: trains the relevance model into the models store, fills the caches
            run_child(["stage_a", tree, raw, str(tmp), a.clock], envs[name])
        for rep in range(a.reps):
            for name, tree in trees.items():
                r = run_child(["stage_a", tree, raw, str(tmp), a.clock], envs[name])
                results["stage_a"][name].append(r)
                print(name, "stage A", json.dumps({k: v for k, v in r.items() if k != "steps"}), flush=True)
        if not a.no_build:
            for rep in range(a.reps):
                for name, tree in trees.items():
                    r = run_child(["build", tree, raw, str(tmp), str(a.workers)], envs[name])
                    results["build"][name].append(r)
                    print(name, "build", json.dumps({k: v for k, v in r.items() if k != "stats"}), flush=True)
            hashes = {r["content_hash"] for runs in results["build"].values() for r in runs}
            stats = {json.dumps(r["stats"], sort_keys=True) for runs in results["build"].values() for r in runs}
            results["same_content_hash"], results["same_stats"] = len(hashes) == 1, len(stats) == 1
            results["content_hash"] = sorted(hashes)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
        report(results, a.workers)
        if a.out:
            Path(a.out).write_text(json.dumps(results, indent=1, ensure_ascii=False))
        shutil.rmtree(tmp, ignore_errors=True)


def report(results: dict, workers: int) -> None:
    sa = results["stage_a"]
    if not all(sa.values()):
        return
    mb = sa["new"][0]["MB"]
    steps = {t: median_steps(runs) for t, runs in sa.items()}
    clock = sa["new"][0].get("clock", "wall")
    print(f"\nStage A, one process (median of {len(sa['new'])}; step seconds: {clock} time; MB/s per core = {mb} MB / step seconds)")
    print("| step | baseline s | new s | baseline MB/s/core | new MB/s/core |")
    print("|---|---|---|---|---|")
    for k in steps["new"]:
        b, n = steps["baseline"].get(k), steps["new"][k]
        print(f"| {k} | {b:.2f} | {n:.2f} | {mb / b:.1f} | {mb / n:.1f} |" if b else f"| {k} | - | {n:.2f} | - | {mb / n:.1f} |")
    for t in ("baseline", "new"):
        wall = statistics.median(r["wall_s"] for r in sa[t])
        cpu = statistics.median(r["cpu_s"] for r in sa[t])
        hwm = max(r["VmHWM_MB"] or 0 for r in sa[t])
        print(f"stage A {t}: wall {wall:.1f} s ({mb / wall:.2f} MB/s/core), CPU {cpu:.1f} s, VmHWM {hwm:.0f} MB")
    bl = results["build"]
    if all(bl.values()):
        print(f"\nWhole build, {workers} workers (median of {len(bl['new'])})")
        keys = ["wall_s", "tree_cpu_s", "before_a_s", "stage_a_s", "stage_b_s", "stage_c_s", "publish_s", "collect_stats_s",
                "driver_VmHWM_MB", "workers_VmHWM_MB"]
        print("| tree | " + " | ".join(keys) + " | MB/s/core (wall) | MB per CPU-s |")
        print("|---" * (len(keys) + 3) + "|")
        for t, runs in bl.items():
            med = {k: statistics.median(r[k] for r in runs if r.get(k) is not None) for k in keys
                   if any(r.get(k) is not None for r in runs)}
            print(f"| {t} | " + " | ".join(f"{med.get(k, float('nan')):.1f}" for k in keys)
                  + f" | {mb / med['wall_s'] / workers:.2f} | {mb / med['tree_cpu_s']:.2f} |")
        print(f"same content hash: {results.get('same_content_hash')} {results.get('content_hash')}; "
              f"same stats: {results.get('same_stats')}")


if __name__ == "__main__":
    main()
