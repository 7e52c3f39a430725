"""Hand-run benchmark: end-to-end MB/s per core of ``cumed build`` against datasketch, with the
code of an earlier commit as the same-run baseline (issue #17's throughput targets).

    .venv/bin/python benchmarks/throughput.py [--docs 1000000] [--baseline <commit>]
        [--recipes dedup,full] [--workers 1,2] [--repeat 1] [--tmp /tmp]

The corpus is ``corpus_10m.py``'s (Huatuo-26M-like short QA records built from the seed's real
consultations, ``jsonl.zst`` shards of 250,000 records, 2 % exact and 2 % near copies). Runs, one
subprocess each, back to back on the same files:

- datasketch's MinHashLSH, one process (read, 128-permutation MinHash of character 5-grams,
  query/insert), the issue's yardstick for the dedup-only target (>= 10x its MB/s per core);
- ``cumed build`` of the dedup-only recipe (``steps: {dedup: {threshold: 0.75}}``) and of the
  full pretraining steps (``corpus_10m.STEPS``), end to end (input files to a published
  version), at each ``--workers``, with this checkout's code and with ``--baseline``'s (a
  ``git worktree`` of that commit, removed afterwards).

MB/s per core = text MB / wall seconds / processes (datasketch: 1); MB per CPU-second = text MB /
CPU seconds of the whole process tree (``getrusage``: threads and pool workers included), the
stricter figure when a process runs threads. Each cumed run also reports
the peak memory (VmHWM) of its largest process, and its published content hash: the baseline
and this checkout must publish the same one (a speed-up that changes the output is a bug).
``--repeat N`` runs every build N times, the codes interleaved (before, now, before, now, ...), and
reports the run of median wall time, with every run's figures beside it: the box's speed moves
by up to ~35 % within minutes, so one run of each code can land in two different phases.
Results: ``<tmp>/cumed_throughput.json``; a plot ``benchmarks/out/throughput.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import corpus_10m as c10m  # noqa: E402  (the corpus, the recipe text, the measured runs)

DEDUP_ONLY = "\nsteps:\n  dedup:\n    threshold: 0.75\n"


def _children_cpu() -> float:
    """CPU seconds (user + system) of every waited-for descendant so far: a build's pool workers
    and pyarrow's threads included, which "wall x processes" would miss (pyarrow reads and
    writes with a thread pool, so one ``--workers 1`` build may use more than one core)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_build(code: Path, root: Path, recipe: Path, workers: int, mb: float) -> dict:
    """One ``cumed build`` with the code under ``code`` (``corpus_10m.cumed_build`` uses ROOT)."""
    shutil.rmtree(root / "work", ignore_errors=True)
    shutil.rmtree(root / "store", ignore_errors=True)
    saved, cwd = c10m.ROOT, os.getcwd()
    c10m.ROOT = code  # cumed_build puts ROOT on PYTHONPATH
    # and out of the checkout: ``python -c`` puts the working directory first on sys.path, ahead
    # of PYTHONPATH, so a build started from the checkout would run its code, not ``code``'s
    os.chdir(root)
    cpu0 = _children_cpu()
    try:
        r = c10m.cumed_build(root, recipe, workers, mb)
    finally:
        c10m.ROOT = saved
        os.chdir(cwd)
    r["cpu_s"] = round(_children_cpu() - cpu0, 1)
    r["MB_per_cpu_s"] = round(mb / r["cpu_s"], 2)
    from cumed.store import Store

    ref = f"{recipe.stem}@1"
    r["content_hash"] = Store(root / "store").get(ref).manifest.get("content_hash")
    return {k: r[k] for k in ("wall_s", "MB_per_s_per_core", "cpu_s", "MB_per_cpu_s", "max_process_peak_MB",
                              "stages", "kept", "removed", "content_hash")}


def median_run(runs: list[dict]) -> dict:
    """The run of median wall time (the lower middle of an even count), with every run's wall
    seconds and MB/s per core beside it: this box's speed moves by up to ~35 % within minutes
    (other tenants; BENCHMARKS.md), and one run says more about the minute than about the code."""
    ranked = sorted(runs, key=lambda r: r["wall_s"])
    r = dict(ranked[(len(ranked) - 1) // 2])
    if len(runs) > 1:
        r["runs_wall_s"] = [x["wall_s"] for x in runs]
        r["runs_MB_per_s_per_core"] = [x["MB_per_s_per_core"] for x in runs]
        if len({x["content_hash"] for x in runs}) != 1:
            raise SystemExit(f"the runs published different content hashes: {[x['content_hash'] for x in runs]}")
    return r


def datasketch(root: Path, mb: float) -> dict:
    cpu0 = _children_cpu()
    r = c10m.run_measured([sys.executable, "-c", c10m.DATASKETCH, str(root / "raw")], dict(os.environ))
    cpu = round(_children_cpu() - cpu0, 1)
    out = json.loads(r.pop("stdout").strip().splitlines()[-1])
    return {**out, "wall_s": r["wall_s"], "cpu_s": cpu, "MB_per_cpu_s": round(mb / cpu, 2),
            "max_process_peak_MB": r["max_process_peak_MB"], "MB_per_s_per_core": round(mb / r["wall_s"], 2)}


def warm_up(codes: dict[str, Path], root: Path, raw: Path, docs: int = 5000) -> None:
    """One small full build per code before anything is timed, so that no timed build pays a
    one-off cost the other does not: compiling the numba kernels into a fresh checkout's cache,
    building the decontamination index into the shared ``CUMED_CACHE`` (``root/cache``)."""
    warm = root / "warm"
    mb = c10m.write_corpus(raw, warm / "raw", docs)
    (root / "cache").mkdir(parents=True, exist_ok=True)
    (warm / "cache").symlink_to(root / "cache")
    recipe = c10m.write_recipe(warm / "qa-full.yaml", "qa-full", 1)
    for code in codes.values():
        run_build(code, warm, recipe, 1, mb)
    shutil.rmtree(warm)


def worktree(commit: str, tmp: Path) -> Path:
    path = tmp / f"cumed_baseline_{commit[:10]}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], capture_output=True)
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit], check=True,
                   capture_output=True)
    return path


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = res["datasketch"]
    labels, values, runs = [], [], []
    if ds:
        labels, values, runs = ["datasketch\n(1 process)"], [ds["MB_per_s_per_core"]], [[]]
    for key, r in res["cumed"].items():
        labels.append(key.replace(" ", "\n"))
        values.append(r["MB_per_s_per_core"])
        runs.append(r.get("runs_MB_per_s_per_core", []))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(labels)), 4))
    ax.bar(range(len(values)), values, color=["grey" if ds and k == 0 else "tab:blue" for k in range(len(values))])
    for k, vs in enumerate(runs):  # every run of a repeated build, the bar its median
        ax.plot([k] * len(vs), vs, "k.", ms=4)
    if ds:
        ax.axhline(10 * ds["MB_per_s_per_core"], color="tab:red", ls=":", label="10x datasketch (dedup-only target)")
    ax.axhline(10, color="tab:green", ls="--", label="10 MB/s per core (full-pipeline target)")
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    ax.set(ylabel="MB/s per core, end to end", title=f"{res['docs']:,} short QA records, {res['MB']} MB")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", default=str(ROOT.parent / "shared/data/raw"))
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--baseline", default=None, help="commit whose code runs the same builds (same run)")
    ap.add_argument("--recipes", default="dedup,full")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--tmp", default=tempfile.gettempdir())
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each build, the codes interleaved; the median run is reported")
    a = ap.parse_args()
    tmp = Path(a.tmp)
    root = tmp / f"cumed_throughput_{a.docs}"
    shutil.rmtree(root, ignore_errors=True)
    mb = c10m.write_corpus(Path(a.raw), root / "raw", a.docs)
    shards = max(1, -(-a.docs // c10m.SHARD_RECORDS))
    recipes = {"dedup": c10m.write_recipe(root / "qa-dedup.yaml", "qa-dedup", shards, steps=DEDUP_ONLY),
               "full": c10m.write_recipe(root / "qa-full.yaml", "qa-full", shards)}
    codes = {"now": ROOT}
    if a.baseline:
        codes = {"before": worktree(a.baseline, tmp), **codes}
    warm_up(codes, root, Path(a.raw))
    # datasketch is the dedup-only target's yardstick: run (~5 min) only when that recipe is measured
    ds = datasketch(root, mb) if "dedup" in a.recipes.split(",") else None
    res = {"docs": a.docs, "MB": round(mb, 1), "baseline": a.baseline, "datasketch": ds, "cumed": {}}
    print(json.dumps({"datasketch": ds}), flush=True)
    for name in a.recipes.split(","):
        for w in [int(x) for x in a.workers.split(",")]:
            runs: dict[str, list[dict]] = {code_name: [] for code_name in codes}
            for rep in range(a.repeat):  # interleaved: before, now, before, now, ...
                for code_name, code in codes.items():
                    r = run_build(code, root, recipes[name], w, mb)
                    runs[code_name].append(r)
                    print(json.dumps({f"{name} {w}w {code_name} run {rep + 1}": r}), flush=True)
            for code_name, rs in runs.items():
                key = f"{name} {w}w {code_name}"
                r = median_run(rs)
                if ds:
                    r["x_datasketch"] = round(r["MB_per_s_per_core"] / ds["MB_per_s_per_core"], 2)
                    r["x_datasketch_cpu"] = round(r["MB_per_cpu_s"] / ds["MB_per_cpu_s"], 2)
                res["cumed"][key] = r
                print(json.dumps({key: r}), flush=True)
    for code_name, code in codes.items():
        if code_name == "before":
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(code)], capture_output=True)
    Path(tmp, "cumed_throughput.json").write_text(json.dumps(res, indent=1))
    plot(res, ROOT / "benchmarks" / "out" / "throughput.png")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
