"""Hand-run benchmark of near-duplicate detection on the full raw corpus plus planted duplicates.

    .venv/bin/python benchmarks/dedup_bench.py --raw ../shared/data/raw [--skip-datasketch] [--scale 1,4]

Each method runs in its own subprocess so its peak RSS (ru_maxrss) is its own. Methods:
- ``cumed``      curation.dedup.find_duplicates (canonical form, OPH 28x4, verified Jaccard 0.75)
- ``datasketch`` MinHashLSH, 128 permutations, threshold 0.75, char 5-grams of the raw text
                 (unverified: every LSH hit counts as a duplicate of the first indexed doc)
- ``staged``     the three datatrove stages ``cumed build`` runs (Parquet in, kept/removed Parquet
                 out), 1 worker; ``staged2``: the same with 2 workers (``--methods staged,staged2``)
Planted set: 400 copies per kind (2,000) of real documents >= 200 characters that are not
duplicates already (see curation/dedup/plant.py). MB/s = raw text MB (UTF-8) / wall seconds of
the whole near-dup stage (canonicalisation, signatures, candidates, verification, clustering),
not counting reading the files.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import pickle
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CACHE = Path("/tmp/cumed_dedup_bench")


# ------------------------------------------------------------------ corpus (simple readers)
def _strings(x):
    if isinstance(x, str):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)


def _read(path: Path) -> str:
    b = path.read_bytes()
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return b.decode(enc)
        except UnicodeDecodeError:
            pass
    return b.decode("utf-8", errors="replace")


def load_corpus(raw: Path) -> list[tuple[str, str, dict]]:
    docs = []
    for p in sorted(raw.rglob("*")):
        if not p.is_file() or p.name.startswith(("LICENSE", "README")) or p.suffix not in (".csv", ".json", ".jsonl", ".md", ".tsv", ".txt"):
            continue
        rel = str(p.relative_to(raw))
        meta = {"source": rel.split("/")[0], "synthetic": "llama_data" in rel}
        text = _read(p)
        recs: list[str] = []
        if p.suffix == ".csv":
            recs = ["\n".join(c for c in row if c) for row in csv.reader(io.StringIO(text))][1:]
        elif p.suffix == ".md":
            recs = [text]
        elif p.suffix == ".tsv":  # CMeKG: one document per subject
            by = {}
            for line in text.splitlines():
                s = line.split("\t")
                if len(s) == 3:
                    by.setdefault(s[0], []).append(f"{s[1]}：{s[2]}")
            recs = [f"{k}\n" + "\n".join(v) for k, v in by.items()]
        elif p.suffix == ".txt":
            recs = [b for b in text.split("\n\n") if b.strip()] if "vocab" not in p.name else []
        else:
            try:
                data = json.loads(text)
                data = data if isinstance(data, list) else [data]
            except json.JSONDecodeError:
                data = [json.loads(line) for line in text.splitlines() if line.strip().startswith(("{", "["))]
            recs = ["\n".join(_strings(r)) for r in data]
        docs += [(f"{rel}#{i}", r, meta) for i, r in enumerate(recs) if r.strip()]
    return docs


def replica_table(r: int) -> dict[int, int]:
    """Replica r of the corpus: a fixed random permutation of the common CJK characters that
    t2s leaves alone. Within a replica duplicates stay duplicates (same permutation), across
    replicas texts are unrelated: the corpus grows r-fold with the same duplicate structure.
    (Traditional copies do not survive it: their characters are outside the permutation.)"""
    from curation.dedup.canonical import _t2s

    traditional = set(_t2s()[1].tolist())
    chars = [c for c in range(0x4E00, 0x9FA6) if c not in traditional]
    perm = chars[:]
    random.Random(r).shuffle(perm)
    return dict(zip(chars, perm))


def prepare(raw: Path, per_kind: int):
    CACHE.mkdir(exist_ok=True)
    f = CACHE / f"bench_{per_kind}.pkl"
    if f.exists():
        return pickle.loads(f.read_bytes())
    from curation.dedup import find_duplicates
    from curation.dedup.plant import plant

    docs = load_corpus(raw)
    natural = find_duplicates(docs)
    busy = {d.id for d in natural} | {d.duplicate_of for d in natural}
    pool = [(i, t) for i, t, _ in docs if i not in busy]
    copies, truth = plant(pool, per_kind=per_kind, seed=1)
    data = (docs, [(i, t, {"source": "planted"}) for i, t in copies], truth, len(natural))
    f.write_bytes(pickle.dumps(data))
    return data


# ------------------------------------------------------------------ methods (one per subprocess)
def run_cumed(docs):
    from curation.dedup import find_duplicates

    stats: dict = {}
    dec = find_duplicates(docs, stats=stats)
    return dec, stats


def run_datasketch(docs):
    import numpy as np
    try:  # the baseline only: an optional extra, no library module of cumed imports it
        from datasketch import MinHash, MinHashLSH
    except ImportError:
        sys.exit("the datasketch baseline needs datasketch: pip install 'cumed[bench]' (or pass --skip-datasketch)")

    from curation.dedup.core import Decision

    lsh = MinHashLSH(threshold=0.75, num_perm=128)
    out = []
    for i, t, _ in docs:
        sh = {t[k : k + 5] for k in range(max(1, len(t) - 4))}
        m = MinHash(num_perm=128)
        m.update_batch([s.encode("utf-8") for s in sh])
        hits = lsh.query(m)
        if hits:
            out.append(Decision(i, sorted(hits)[0], 0.0, "near"))
        else:
            lsh.insert(i, m)
    return out, {}


def run_staged(docs, workers: int = 1):
    """The three datatrove stages as ``cumed build`` runs them, on Parquet in /tmp: stage 1
    Parquet -> NearDupSignatures -> ParquetWriter (the build's kept_adapter / schema), stage 2
    NearDupClusters, stage 3 ApplyDuplicateDecisions (kept + removed Parquet), with the build's
    fork start method, GC and allocator settings. The reader skips datatrove's per-document
    ``file_path`` (as the build's RecipeReader does; kept_adapter drops it). The timed wall is the
    three stages; writing the input shards first is fixture set-up, reported apart."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import ParquetReader

    from curation.dedup import ApplyDuplicateDecisions, NearDupClusters, NearDupSignatures, read_decisions
    from curation.build.executors import quiet_datatrove as _quiet_datatrove
    from cumed.process import pipeline_gc, reuse_freed_memory
    from curation.rows import DOC_SCHEMA, RankParquetWriter, kept_adapter

    t_fixture = time.perf_counter()
    root = CACHE / "staged"
    shutil.rmtree(root, ignore_errors=True)
    (root / "in").mkdir(parents=True)
    shards = 8
    for s in range(shards):
        part = docs[s::shards]
        pq.write_table(pa.table({"id": [d[0] for d in part], "text": [d[1] for d in part]}), root / "in" / f"{s:02d}.parquet")
    reader = ParquetReader(str(root / "in"))
    reader.add_file_path = False  # not a constructor argument of ParquetReader in this datatrove
    _quiet_datatrove()  # as cumed build runs its stages: task logs to files, errors to stderr
    reuse_freed_memory()
    with pipeline_gc():
        t0 = time.perf_counter()
        LocalPipelineExecutor(
            pipeline=[reader, NearDupSignatures(str(root / "sigs")),
                      RankParquetWriter(str(root / "texts"), adapter=kept_adapter, schema=DOC_SCHEMA, compression="zstd")],
            tasks=shards, workers=workers, logging_dir=str(root / "l1"), start_method="fork",
        ).run()
        t1 = time.perf_counter()
        LocalPipelineExecutor(
            pipeline=[NearDupClusters(str(root / "sigs"), str(root / "dec"), partitions=4)],
            tasks=1, logging_dir=str(root / "l2"),
        ).run()
        t2 = time.perf_counter()
        LocalPipelineExecutor(
            pipeline=[ApplyDuplicateDecisions(str(root / "texts"), str(root / "kept"), str(root / "dec"), str(root / "removed"))],
            tasks=shards, workers=workers, logging_dir=str(root / "l3"), start_method="fork",
        ).run()
        t3 = time.perf_counter()
    sig_s = sum(st["time_stats"]["total"] for st in json.loads((root / "l1" / "stats.json").read_text())
                if "signatures" in st["name"])
    # "wall_s" of a staged run = its three stages: writing the input shards above is fixture
    # set-up (in a build the documents come from the readers), like datasketch's input list
    return read_decisions(str(root / "dec")), {"workers": workers, "wall_s": t3 - t0,
                                               "fixture_write_s": round(t0 - t_fixture, 2),
                                               "stage1_s": round(t1 - t0, 2),
                                               "stage1_signatures_step_s": round(sig_s, 2),
                                               "stage2_s": round(t2 - t1, 2), "stage3_s": round(t3 - t2, 2)}


def run_staged2(docs):
    return run_staged(docs, workers=2)


def child(method: str, per_kind: int, scale: int, raw: Path):
    from curation.dedup.plant import score

    docs, copies, truth, _ = prepare(raw, per_kind)
    data = docs + copies
    if scale > 1:
        base = data
        for r in range(1, scale):
            tab = replica_table(r)
            data = data + [(f"{i}@r{r}", t.translate(tab), m) for i, t, m in base]
            truth = truth + [(f"{c}@r{r}", f"{o}@r{r}", k) for c, o, k in truth if "@r" not in c]
    mb = sum(len(t.encode("utf-8")) for _, t, _ in data) / 1e6
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    dec, stats = {"cumed": run_cumed, "datasketch": run_datasketch, "staged": run_staged, "staged2": run_staged2}[method](data)
    wall = stats.pop("wall_s", None) or time.perf_counter() - t0
    s = score(dec, truth)
    print(json.dumps({
        "method": method, "scale": scale, "docs": len(data), "MB": round(mb, 1), "wall_s": round(wall, 2),
        "MB_per_s": round(mb / wall, 2), "peak_rss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_MB": round(base_rss), "recall": round(s["recall"], 4), "precision": round(s["precision"], 4),
        "per_kind": {k: round(v, 3) for k, v in s["per_kind"].items()}, "false_pairs": s["false_pairs"],
        "removed": len(dec), "stats": stats,
    }))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", default=str(Path(__file__).resolve().parents[2] / "shared/data/raw"))
    ap.add_argument("--per-kind", type=int, default=400)
    ap.add_argument("--scale", default="1,4,16")
    ap.add_argument("--skip-datasketch", action="store_true")
    ap.add_argument("--methods", default="", help="comma list to run instead, e.g. staged,staged2,datasketch (staged2: 2 workers)")
    ap.add_argument("--child", nargs=2)
    a = ap.parse_args()
    raw = Path(a.raw)
    if a.child:
        return child(a.child[0], a.per_kind, int(a.child[1]), raw)
    docs, copies, truth, natural = prepare(raw, a.per_kind)
    print(f"corpus: {len(docs)} docs, {sum(len(t.encode()) for _, t, _ in docs) / 1e6:.1f} MB; natural dup decisions {natural}; planted {len(copies)}", flush=True)
    runs = [("cumed", 1)] + ([] if a.skip_datasketch else [("datasketch", 1)]) + [("cumed", int(s)) for s in a.scale.split(",") if int(s) > 1]
    if a.methods:
        runs = [(m, 1) for m in a.methods.split(",")]
    results = []
    for m, s in runs:
        r = subprocess.run([sys.executable, __file__, "--raw", str(raw), "--per-kind", str(a.per_kind), "--child", m, str(s)], capture_output=True, text=True)
        if r.returncode:
            print(r.stderr[-3000:])
            continue
        res = json.loads(r.stdout.strip().splitlines()[-1])
        print(json.dumps(res), flush=True)
        results.append(res)
    (CACHE / f"results_{a.methods or 'main'}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
