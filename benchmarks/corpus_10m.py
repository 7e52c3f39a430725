"""Hand-run benchmark: ``cumed build`` on Huatuo-26M-like corpora of 1M, 4M and 10M+ short QA records.

    .venv/bin/python benchmarks/corpus_10m.py --raw ../shared/data/raw [--sizes 1000000,4000000,10000000]
        [--workers 2] [--compare 1000000] [--tmp /tmp]

The corpus. Huatuo-26M is 26 million short consultations (a question, a doctor's answer). Ours
are built from the seed's real consultations (the ``qa`` sources of ``datasets/cumed-pretrain.yaml``):
each record takes one consultation's title, another's question sentence and two or three answer
sentences drawn from the pool of every answer, so records are medical text (the lexicon filter
keeps them), Huatuo-sized (~150 characters) and distinct: two records share a whole sentence now
and then, never most of their text. 2 % of records are exact copies of an earlier one and 2 % near
copies (3 % of characters replaced), so stage B has real work. Written as ``jsonl.zst`` shards of
250,000 records, read by ``reader: jsonl`` with a template, as a user's dump would be.

The recipe is the pretraining recipe's steps (normalise, PII, the nine filters with the seed's
lexicon, decontamination against the seed's evaluation sets, near-dup at 0.75) without
``relevance``, which applies to the ChinaXiv papers only. Evaluation sets and lexicon files are
linked from ``--raw``.

What is measured, per size, for one ``cumed build`` subprocess (input files to a published
version, ``--workers`` processes):
- wall time, MB/s and MB/s per core (MB = UTF-8 bytes of the records' text);
- per stage (A, each stage-B step, C, publish) wall time and MB/s per core;
- the peak memory of EVERY process of the build (the CLI process and each pool worker): its
  ``VmHWM`` from ``/proc/<pid>/status``, sampled every 0.1 s while it lives (``VmHWM`` is the
  process's own high-water mark, so a late sample holds its peak; ``ru_maxrss`` is not used:
  Linux carries it across fork+exec).
At ``--compare`` (default 1M), in the same run: a dedup-only cumed recipe end to end, datatrove's
own MinHash (``cmn``: its 4 stages from the same files, 1 task each per core) and datasketch's
MinHashLSH (one process: read, sign, query/insert), for MB/s ratios.
Results: ``<tmp>/cumed_10m_results.json``; a plot ``benchmarks/out/corpus_10m.png``.
datatrove's ``cmn`` word tokenizer needs spaCy and jieba (``pip install spacy jieba``; not in
the ``bench`` extra, which CI installs): without them that row is skipped with the reason.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARD_RECORDS = 250_000
EXACT_RATE, NEAR_RATE, NEAR_EDIT = 0.02, 0.02, 0.03
SENT_RE = re.compile(r"[^。！？!?]+[。！？!?]?")

STEPS = """
steps:
  normalize: {}
  pii: {}
  filters:
    min_length: {}
    mojibake: {}
    cjk_ratio: {}
    symbol_ratio: {}
    digit_ratio: {}
    boilerplate: {}
    line_repetition: {}
    char_repetition: {}
    lexicon_density:
      lexicon: [CMeKG_pycmekg/cmekg_triples.tsv, QASystemOnMedicalGraph_39health/data/*_vocab.txt]
  decontaminate:
    eval_sets: [huatuo26m_test, cmb_clin, disc_eval]
  dedup:
    threshold: 0.75
"""
SOURCE = """name: {name}
kind: documents
shards: {shards}
sources:
  - name: qa_dump
    reader: jsonl
    path: 'qa/*.jsonl.zst'
    category: qa
    license: synthetic benchmark corpus
    options: {{template: "{{question}}\\n{{answer}}", id_field: id}}
"""


# ------------------------------------------------------------------ corpus
def seed_pools(raw: Path) -> tuple[list[str], list[str], list[str]]:
    """Titles, question sentences and answer sentences of the seed's real consultations."""
    import yaml

    from curation.build.reader import RecipeReader
    from curation.recipe import load_recipe

    recipe_path = ROOT / "datasets" / "cumed-pretrain.yaml"
    spec = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
    qa = {s["name"] for s in spec["sources"] if s.get("category") == "qa" and s.get("enabled", True)}
    recipe = load_recipe(recipe_path, raw)
    for s in recipe.sources:
        s.enabled = s.enabled and s.name in qa
    titles, asks, answers = [], [], []
    with tempfile.TemporaryDirectory() as counts:
        for doc in RecipeReader(recipe, counts).run():
            lines = [x.strip() for x in doc.text.split("\n") if x.strip()]
            if len(lines) < 3:
                continue
            titles.append(lines[0][:40])
            asks += [s for s in SENT_RE.findall(lines[1]) if 8 <= len(s) <= 80]
            answers += [s for s in SENT_RE.findall("".join(lines[2:])) if 8 <= len(s) <= 80]
    return titles, asks, answers


def write_corpus(raw: Path, out: Path, n: int, seed: int = 26) -> float:
    """``n`` records as jsonl.zst shards under ``out/qa``; returns the text MB."""
    import zstandard

    titles, asks, answers = seed_pools(raw)
    rng = random.Random(seed)
    (out / "qa").mkdir(parents=True, exist_ok=True)
    cjk = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    recent: list[tuple[str, str]] = []
    text_bytes = 0
    cctx = zstandard.ZstdCompressor(level=3)
    for shard in range((n + SHARD_RECORDS - 1) // SHARD_RECORDS):
        buf = io.StringIO()
        for i in range(shard * SHARD_RECORDS, min(n, (shard + 1) * SHARD_RECORDS)):
            r = rng.random()
            if recent and r < EXACT_RATE:
                q, a = rng.choice(recent)
            elif recent and r < EXACT_RATE + NEAR_RATE:
                q, a = rng.choice(recent)
                a = "".join(rng.choice(cjk) if rng.random() < NEAR_EDIT else ch for ch in a)
            else:
                q = rng.choice(titles) + "，" + rng.choice(asks)
                a = "".join(rng.sample(answers, rng.randint(2, 3)))
                if len(recent) < 50_000:
                    recent.append((q, a))
                else:
                    recent[rng.randrange(50_000)] = (q, a)
            text_bytes += len(q.encode()) + len(a.encode()) + 1
            buf.write(json.dumps({"id": f"q{i:09d}", "question": q, "answer": a}, ensure_ascii=False))
            buf.write("\n")
        (out / "qa" / f"part-{shard:05d}.jsonl.zst").write_bytes(cctx.compress(buf.getvalue().encode()))
    _link_side_inputs(raw, out)
    return text_bytes / 1e6


def _link_side_inputs(raw: Path, out: Path) -> None:
    """The evaluation sets and the lexicon files the recipe reads, linked from the seed."""
    from cumed.eval_sets import EVAL_FILES

    rels = [p for files in EVAL_FILES.values() for p in files]
    rels += ["CMeKG_pycmekg/cmekg_triples.tsv",
             *[str(p.relative_to(raw)) for p in (raw / "QASystemOnMedicalGraph_39health/data").glob("*_vocab.txt")]]
    for rel in rels:
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            dst.symlink_to((raw / rel).resolve())


def write_recipe(path: Path, name: str, shards: int, steps: str = STEPS) -> Path:
    path.write_text(SOURCE.format(name=name, shards=shards) + steps, encoding="utf-8")
    return path


# ------------------------------------------------------------------ measuring processes
def _vmhwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _shared_split(pid: int) -> tuple[int, int]:
    """(PSS, private) bytes of a process now (``/proc/<pid>/smaps_rollup``): PSS counts each page
    it shares with others (a forked worker with the driver) as a share, private memory only its
    own pages, what the task allocated itself. VmHWM counts every page it touches whole."""
    pss = private = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key == "Pss":
                pss = int(rest.split()[0]) * 1024
            elif key in ("Private_Clean", "Private_Dirty"):
                private += int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return pss, private


# PSS and private memory are sampled every this many VmHWM samples (~1 s): reading smaps_rollup
# walks the process's page tables (~ms for a 1 GB process), too much every 0.1 s on 2 cores
SHARED_EVERY = 10


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def run_measured(cmd: list[str], env: dict, detail: bool = False) -> dict:
    """Run ``cmd``; every process of its tree's peak memory (VmHWM), sampled every 0.1 s, and its
    peak PSS and private memory (``_shared_split``), sampled every ~1 s: the peaks of a forked
    worker's own memory, which its VmHWM overstates by the driver's pages it shares (``detail``:
    also ``all_processes``, each with the first and last time it was seen alive)."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    peaks: dict[int, tuple[int, str]] = {}
    seen: dict[int, list[float]] = {}  # pid -> [first, last] time it was sampled (which stage it served)
    shared_peaks: dict[int, list[int]] = {}  # pid -> [peak PSS, peak private]
    tick = 0

    def role(pid: int) -> str:  # forked pool workers carry the main process's command line
        # read when a child is first seen, not at start: right after Popen the process may not
        # have exec'd yet and still show this script's command line (then no worker matched)
        cmd = _cmdline(pid)
        return "main" if pid == root.pid else "worker (fork of main)" if cmd == _cmdline(root.pid) else cmd[:100]
    while proc.poll() is None:
        try:
            pids = [root.pid] + [c.pid for c in root.children(recursive=True)]
        except psutil.Error:
            pids = [root.pid]
        now = time.time()
        for pid in pids:
            seen.setdefault(pid, [now, now])[1] = now
            hwm = _vmhwm(pid)
            if hwm > peaks.get(pid, (0, ""))[0]:
                peaks[pid] = (hwm, peaks.get(pid, (0, ""))[1] or role(pid))
            if tick % SHARED_EVERY == 0:
                got, had = _shared_split(pid), shared_peaks.setdefault(pid, [0, 0])
                had[0], had[1] = max(had[0], got[0]), max(had[1], got[1])
        tick += 1
        time.sleep(0.1)
    out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{cmd} failed:\n{err[-3000:]}")
    procs = sorted(({"pid": p, "peak_MB": round(h / 2**20), "peak_pss_MB": round(shared_peaks.get(p, [0, 0])[0] / 2**20),
                     "peak_private_MB": round(shared_peaks.get(p, [0, 0])[1] / 2**20), "role": r, "alive": seen[p]}
                    for p, (h, r) in peaks.items()),
                   key=lambda x: -x["peak_MB"])
    return {"wall_s": round(time.perf_counter() - t0, 1), "processes": len(procs),
            "max_process_peak_MB": procs[0]["peak_MB"] if procs else 0,
            "max_process_pss_MB": max((p["peak_pss_MB"] for p in procs), default=0),
            "max_process_private_MB": max((p["peak_private_MB"] for p in procs), default=0),
            "main_peak_MB": next((p["peak_MB"] for p in procs if p["role"] == "main"), 0),
            "top_processes": [{k: v for k, v in p.items() if k != "alive"} for p in procs[:5]],
            **({"all_processes": procs} if detail else {}), "stdout": out}


def stage_times(work: Path) -> dict:
    """Per stage folder under logs/: first task log line to last completion file."""
    from datetime import datetime

    out = {}
    for d in sorted((work / "logs").iterdir()) if (work / "logs").is_dir() else []:
        logs = sorted((d / "logs").glob("*.log")) if (d / "logs").is_dir() else []
        comps = sorted((d / "completions").glob("*")) if (d / "completions").is_dir() else []
        if logs and comps:
            start = min(datetime.strptime(f.read_text(errors="replace")[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp()
                        for f in logs)
            out[d.name] = (start, max(f.stat().st_mtime for f in comps))
    return out


# ------------------------------------------------------------------ runs
def cumed_build(root: Path, recipe: Path, workers: int, mb: float) -> dict:
    env = {**os.environ, "CUMED_CACHE": str(root / "cache"), "PYTHONPATH": str(ROOT)}
    store, work = root / "store", root / "work"
    cmd = [sys.executable, "-c", "import sys; from cumed.cli import main; sys.argv[0] = 'cumed'; main()", "build", str(recipe), "--raw", str(root / "raw"), "--store", str(store),
           "--work-dir", str(work), "--workers", str(workers), "--json"]
    t_start = time.time()
    res = run_measured(cmd, env, detail=True)
    t_end = time.time()
    ref = json.loads(res.pop("stdout").strip().splitlines()[-1])["ref"]
    from cumed.store import Store

    out = Store(store).get(ref).manifest["stats"]
    wdir = next(p for p in work.iterdir() if p.is_dir())
    stages = stage_times(wdir)
    per_stage, last_end = {}, None
    for key, (s, e) in sorted(stages.items(), key=lambda kv: kv[1][0]):
        per_stage[key] = {"s": round(e - s, 1), "MB_per_s_per_core": round(mb / max(e - s, 1e-9) / workers, 2)}
        last_end = e if last_end is None else max(last_end, e)
    if last_end:
        per_stage["publish"] = {"s": round(t_end - last_end, 1)}
        per_stage["startup"] = {"s": round(min(s for s, _ in stages.values()) - t_start, 1)}
    # which stage each pool worker served: the stage its sampled lifetime overlaps most (the
    # main process runs them all); the largest process per stage
    procs = res.pop("all_processes")
    for proc in procs:
        first, last = proc.pop("alive")
        if proc["role"].startswith("worker") and stages:  # a pool worker (with --workers 1 there are none)
            proc["stage"] = max(stages, key=lambda k: min(last, stages[k][1]) - max(first, stages[k][0]))
    for key in per_stage:
        peak = max((p["peak_MB"] for p in procs if p.get("stage") == key), default=None)
        if peak is not None:
            per_stage[key]["largest_worker_MB"] = peak
            # what the worker held of its own (PSS: shared pages in shares; private: its own only)
            for field in ("peak_pss_MB", "peak_private_MB"):
                per_stage[key][f"largest_worker_{field[5:]}"] = max(p[field] for p in procs if p.get("stage") == key)
    res["top_processes"] = procs[:5]
    return {**res, "MB": round(mb, 1), "MB_per_s": round(mb / res["wall_s"], 2),
            "MB_per_s_per_core": round(mb / res["wall_s"] / workers, 2), "stages": per_stage,
            "read": out.get("read"), "kept": out.get("kept"), "removed": out.get("removed"),
            "removed_by": out.get("removed_by_reason") or out.get("removed_by")}


DATASKETCH = """
import io, json, sys, glob, time, zstandard
from datasketch import MinHash, MinHashLSH
lsh, dups, n = MinHashLSH(threshold=0.75, num_perm=128), 0, 0
for f in sorted(glob.glob(sys.argv[1] + '/qa/*.jsonl.zst')):
    with zstandard.ZstdDecompressor().stream_reader(open(f, 'rb')) as r:
        for line in io.TextIOWrapper(r, encoding='utf-8'):
            d = json.loads(line); t = d['question'] + '\\n' + d['answer']
            m = MinHash(num_perm=128)
            m.update_batch([t[i:i + 5].encode() for i in range(max(1, len(t) - 4))])
            if lsh.query(m):
                dups += 1
            else:
                lsh.insert(d['id'], m)
            n += 1
print(json.dumps({'docs': n, 'duplicates': dups}))
"""

DATATROVE = """
import sys, json
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupSignature, MinhashDedupBuckets,
                                               MinhashDedupCluster, MinhashDedupFilter)
raw, work, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = MinhashConfig()
read = lambda: JsonlReader(raw + '/qa', glob_pattern=sys.argv[4], compression='zstd', id_key='id',
                           adapter=lambda self, d, path, li: {'text': d['question'] + '\\n' + d['answer'], 'id': d['id']})
tasks = 8
for i, pipe in enumerate([
        [read(), MinhashDedupSignature(work + '/sigs', config=cfg, language='cmn')],
        [MinhashDedupBuckets(work + '/sigs', work + '/buckets', config=cfg)],
        [MinhashDedupCluster(work + '/buckets', work + '/remove_ids', config=cfg)],
        [read(), MinhashDedupFilter(work + '/remove_ids'), JsonlWriter(work + '/out')]]):
    n = [tasks, cfg.num_buckets, 1, tasks][i]
    LocalPipelineExecutor(pipeline=pipe, tasks=n, workers=min(workers, n), logging_dir=work + f'/logs{i}').run()
print(json.dumps({'ok': True}))
"""


def compare(root: Path, workers: int, mb: float, datatrove_shards: int) -> dict:
    out = {}
    recipe = write_recipe(root / "dedup-only.yaml", "qa-dedup", shards=8, steps="\nsteps:\n  dedup:\n    threshold: 0.75\n")
    shutil.rmtree(root / "work", ignore_errors=True)
    shutil.rmtree(root / "store", ignore_errors=True)
    out["cumed_dedup_only"] = cumed_build(root, recipe, workers, mb)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = run_measured([sys.executable, "-c", DATASKETCH, str(root / "raw")], env)
    out["datasketch"] = {**json.loads(r.pop("stdout").strip().splitlines()[-1]), **r, "cores": 1,
                         "MB_per_s_per_core": round(mb / r["wall_s"], 2)}
    dt = root / "datatrove"
    shutil.rmtree(dt, ignore_errors=True)
    try:
        from datatrove.utils.word_tokenizers import load_word_tokenizer

        load_word_tokenizer("cmn")
    except ImportError as e:
        out["datatrove_minhash_cmn"] = {"skipped": str(e)}
        return out
    # datatrove's MinHash runs ~0.1 MB/s per core on this text: on the first shards only (same records).
    shards = sorted((root / "raw" / "qa").glob("*.jsonl.zst"))[:datatrove_shards]
    sub_mb = mb * sum(f.stat().st_size for f in shards) / sum(f.stat().st_size for f in (root / "raw" / "qa").glob("*.zst"))
    pattern = "{" + ",".join(f.name for f in shards) + "}" if len(shards) > 1 else shards[0].name
    r = run_measured([sys.executable, "-c", DATATROVE, str(root / "raw"), str(dt), str(workers), pattern], env)
    r.pop("stdout")
    out["datatrove_minhash_cmn"] = {**r, "cores": workers, "shards": len(shards), "MB": round(sub_mb, 1),
                                    "MB_per_s_per_core": round(sub_mb / r["wall_s"] / workers, 2)}
    shutil.rmtree(dt, ignore_errors=True)
    return out


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs = [r["docs"] / 1e6 for r in results]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(docs, [r["build"]["max_process_peak_MB"] for r in results], "o-", label="largest process")
    a.plot(docs, [r["build"]["main_peak_MB"] for r in results], "s--", label="main (cumed build)")
    a.axhline(2048, color="grey", ls=":", label="2 GB target")
    a.set(xlabel="documents (millions)", ylabel="peak memory per process (MB, VmHWM)", title="memory")
    a.legend()
    b.plot(docs, [r["build"]["wall_s"] / 60 for r in results], "o-")
    b.set(xlabel="documents (millions)", ylabel="wall minutes (2 cores)", title="cumed build wall time")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", default=str(ROOT.parent / "shared/data/raw"))
    ap.add_argument("--sizes", default="1000000,4000000,10000000")
    ap.add_argument("--compare", type=int, default=1_000_000, help="size at which datatrove/datasketch run (0: none)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--datatrove-shards", type=int, default=1, help="shards of 250k records datatrove's MinHash reads")
    ap.add_argument("--tmp", default=tempfile.gettempdir())
    a = ap.parse_args()
    results = []
    for n in [int(s) for s in a.sizes.split(",")]:
        root = Path(a.tmp) / f"cumed_10m_{n}"
        shutil.rmtree(root, ignore_errors=True)
        t0 = time.perf_counter()
        mb = write_corpus(Path(a.raw), root / "raw", n)
        gen_s = time.perf_counter() - t0
        shards = max(8, 2 * a.workers, (n + SHARD_RECORDS - 1) // SHARD_RECORDS)
        recipe = write_recipe(root / "qa.yaml", "qa-scale", shards)
        r = {"docs": n, "MB": round(mb, 1), "generate_s": round(gen_s, 1), "workers": a.workers, "shards": shards,
             "build": cumed_build(root, recipe, a.workers, mb)}
        if n == a.compare:
            r["compare"] = compare(root, a.workers, mb, a.datatrove_shards)
        print(json.dumps(r), flush=True)
        results.append(r)
        shutil.rmtree(root, ignore_errors=True)
    Path(a.tmp, "cumed_10m_results.json").write_text(json.dumps(results, indent=1))
    if len(results) > 1:
        slope = (results[-1]["build"]["wall_s"] - results[0]["build"]["wall_s"]) / (results[-1]["docs"] - results[0]["docs"])
        proj = results[-1]["build"]["wall_s"] + slope * (26_000_000 - results[-1]["docs"])
        print(json.dumps({"huatuo26m_projected_wall_h": round(proj / 3600, 2),
                          "huatuo26m_projected_MB": round(results[-1]["MB"] / results[-1]["docs"] * 26e6)}))
    plot(results, ROOT / "benchmarks" / "out" / "corpus_10m.png")


if __name__ == "__main__":
    main()
