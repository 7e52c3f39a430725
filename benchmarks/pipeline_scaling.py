"""Hand-run scaling benchmark of the whole ``cumed build`` pipeline on a replicated corpus.

    .venv/bin/python benchmarks/pipeline_scaling.py --raw ../shared/data/raw [--scales 1,4,16] [--workers 2]

For each scale r the text sources of ``datasets/cumed-pretrain.yaml`` are written r times into a
temporary raw folder (``<name>.rNN.<ext>`` next to where the original lies, same format and
encoding, so the real readers read them), replica k>0 with every common CJK character mapped
through a fixed random permutation (``dedup_bench.replica_table(k)``): duplicates stay
duplicates within a replica, replicas are unrelated, the corpus grows r-fold with the same
duplicate structure. Only content is permuted: CSV/TSV headers, JSON keys and KG predicates are
left alone (readers and templates name them). The recipe's paths become globs matching the
replicas (``disease.csv`` -> ``disease.r*.csv``); evaluation-set files are linked unchanged; the
lexicon inputs of ``lexicon_density`` hold every replica's permuted terms (else the filter drops
every permuted document as non-medical: the first attempt kept 15 % of replica 2).

Each build runs in its own subprocess (``curation.build.build``, fresh work dir and store,
``CUMED_CACHE`` in the temp folder, cold). Peak RSS = the maximum over time of the summed RSS of
the build process and all its children (psutil, sampled every 0.2 s). Afterwards stage B
(``NearDupClusters``) is re-run alone on the build's signatures in a fresh subprocess to get
its own wall time and peak RSS (ru_maxrss).
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
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

RECIPE = ROOT / "datasets" / "cumed-pretrain.yaml"


def _replica_name(rel: str, k: int) -> str:
    p = Path(rel)
    return str(p.with_name(f"{p.stem}.r{k:02d}{p.suffix}"))


def _glob_path(path: str) -> str:
    parts = path.split("/")
    last = Path(parts[-1])
    parts[-1] = f"{last.stem}.r*{last.suffix}"
    return "/".join(parts)


def _permute_json(x, tab):
    if isinstance(x, str):
        return x.translate(tab)
    if isinstance(x, list):
        return [_permute_json(v, tab) for v in x]
    if isinstance(x, dict):
        return {k: _permute_json(v, tab) for k, v in x.items()}
    return x


def transform(text: str, reader: str, options: dict, tab) -> str:
    if tab is None:
        return text
    if reader in ("csv", "disease_cards"):
        head, _, rest = text.partition("\n")
        return head + "\n" + rest.translate(tab)
    if reader == "kg_triples":
        lines = text.split("\n")
        out = [lines[0]]
        for line in lines[1:]:
            c = line.split("\t")
            if len(c) == 3:
                c[0], c[2] = c[0].translate(tab), c[2].translate(tab)
            out.append("\t".join(c) if len(c) == 3 else line.translate(tab))
        return "\n".join(out)
    if reader == "json":
        if options.get("format") == "jsonl":
            return "\n".join(json.dumps(_permute_json(json.loads(line), tab), ensure_ascii=False) if line.strip() else line
                             for line in text.split("\n"))
        return json.dumps(_permute_json(json.loads(text), tab), ensure_ascii=False)
    return text.translate(tab)  # text_blocks, markdown


def replicate(raw: Path, out: Path, scale: int) -> tuple[Path, float]:
    """Write the replicated raw folder and recipe; returns (recipe path, input MB)."""
    from cumed.eval_sets import EVAL_FILES
    from curation.recipe import load_recipe
    from dedup_bench import replica_table

    recipe = load_recipe(RECIPE, raw)
    spec = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    tabs = [None] + [replica_table(k) for k in range(1, scale)]
    mb = 0.0
    by_name = {s.name: s for s in recipe.sources}
    for src in spec["sources"]:
        s = by_name[src["name"]]
        if not s.enabled:
            continue
        opts = dict(src.get("options") or {})
        enc = opts.get("encoding", "utf-8")
        for f in s.files:
            rel = str(f.relative_to(raw))
            text = f.read_bytes().decode(enc)
            for k in range(scale):
                dst = out / _replica_name(rel, k)
                dst.parent.mkdir(parents=True, exist_ok=True)
                data = transform(text, src["reader"], opts, tabs[k]).encode(enc)
                dst.write_bytes(data)
                mb += len(data) / 1e6
        if opts.get("index"):  # markdown index: an entry per replica file
            folder = out / Path(src["path"].split("*")[0])
            idx_src = raw / Path(src["path"].split("*")[0]) / opts["index"]
            lines = []
            for line in idx_src.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    e = json.loads(line)
                    for k in range(scale):
                        lines.append(json.dumps({**e, "file": _replica_name(e["file"], k)}, ensure_ascii=False))
            (folder / opts["index"]).write_text("\n".join(lines) + "\n", encoding="utf-8")
        src["path"] = _glob_path(src["path"])
    # evaluation sets (decontaminate) unchanged; the lexicon inputs (lexicon_density) get every
    # replica's terms, so a permuted document matches its permuted terms as the original does
    for rel in [r for rels in EVAL_FILES.values() for r in rels]:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink((raw / rel).resolve(), out / rel)
    kg = (raw / "CMeKG_pycmekg/cmekg_triples.tsv").read_text(encoding="utf-8")
    head, _, body = kg.partition("\n")
    (out / "CMeKG_pycmekg").mkdir(parents=True, exist_ok=True)
    (out / "CMeKG_pycmekg/cmekg_triples.tsv").write_text(
        head + "\n" + "".join(transform("h\n" + body, "kg_triples", {}, t).partition("\n")[2] if t else body for t in tabs),
        encoding="utf-8")
    for vp in sorted((raw / "QASystemOnMedicalGraph_39health" / "data").glob("*_vocab.txt")):
        v = vp.read_text(encoding="utf-8-sig")
        v = v if v.endswith("\n") else v + "\n"
        (out / vp.relative_to(raw)).write_text("".join(v.translate(t) if t else v for t in tabs), encoding="utf-8")
    if isinstance((spec.get("steps") or {}).get("relevance"), dict):  # the labels name the seed's papers
        spec["steps"]["relevance"]["labels_raw"] = str(raw.resolve())
    rp = out / "cumed-pretrain.yaml"
    rp.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return rp, mb


def _tree_rss(p) -> int:
    import psutil

    total = 0
    for q in [p] + p.children(recursive=True):
        try:
            total += q.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_sampled(cmd: list[str], env: dict) -> tuple[float, int, str]:
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, _tree_rss(ps))
        except psutil.Error:
            pass
        time.sleep(0.2)
    out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{cmd} failed:\n{err[-3000:]}")
    return time.perf_counter() - t0, peak, out


def child_build(recipe: str, raw: str, work: str, store: str, workers: int) -> None:
    from curation.build import build
    from cumed.store import Store

    t0 = time.perf_counter()
    dv, stats = build(recipe, raw, Store(store), workers=workers, work_root=work, progress=False)
    wall = time.perf_counter() - t0
    wdir = next(Path(work).iterdir())
    print(json.dumps({"wall_s": round(wall, 2), "read": stats["read"], "kept": stats["kept"], "removed": stats["removed"],
                      "removed_by": stats["removed_by_reason"], "work": str(wdir)}))


def child_stage_b(work: str) -> None:
    from curation.dedup import NearDupClusters

    w = Path(work)
    out = w / "dedup_rerun"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    for _ in NearDupClusters(str(w / "signatures"), str(out)).run(None) or []:
        pass
    print(json.dumps({"wall_s": round(time.perf_counter() - t0, 2),
                      "peak_rss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                      "stats": json.loads((out / "stats.json").read_text())}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", default=str(ROOT.parent / "shared/data/raw"))
    ap.add_argument("--scales", default="1,4,16")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tmp", default=tempfile.gettempdir())
    ap.add_argument("--child", nargs="+")
    a = ap.parse_args()
    if a.child:
        if a.child[0] == "build":
            return child_build(*a.child[1:5], int(a.child[5]))
        return child_stage_b(a.child[1])
    results = []
    for scale in [int(s) for s in a.scales.split(",")]:
        root = Path(a.tmp) / f"cumed_scaling_{scale}"
        shutil.rmtree(root, ignore_errors=True)
        recipe, mb = replicate(Path(a.raw), root / "raw", scale)
        env = {**os.environ, "CUMED_CACHE": str(root / "cache")}
        py = sys.executable
        wall, peak, out = run_sampled([py, __file__, "--child", "build", str(recipe), str(root / "raw"), str(root / "work"),
                                       str(root / "store"), str(a.workers)], env)
        res = json.loads(out.strip().splitlines()[-1])
        stage_times = _stage_times(Path(res["work"]))
        b_wall, b_peak, b_out = run_sampled([py, __file__, "--child", "stage_b", res["work"]], env)
        b = json.loads(b_out.strip().splitlines()[-1])
        r = {"scale": scale, "MB": round(mb, 1), "docs_read": res["read"], "kept": res["kept"], "removed": res["removed"],
             "wall_s": round(wall, 1), "build_s": res["wall_s"], "MB_per_s": round(mb / wall, 2), "peak_rss_tree_MB": round(peak / 2**20),
             "stage_s": stage_times, "stage_b_alone_s": b["wall_s"], "stage_b_peak_rss_MB": b["peak_rss_MB"],
             "dedup": {k: b["stats"].get(k) for k in ("documents", "candidate_pairs", "checked_pairs", "exact_removed", "near_removed")}}
        print(json.dumps(r), flush=True)
        results.append(r)
        shutil.rmtree(root, ignore_errors=True)
    base = results[0] if results else None
    for r in results:
        r["time_factor"] = round(r["wall_s"] / base["wall_s"], 2)
    Path(a.tmp, "cumed_scaling_results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


def _stage_times(work: Path) -> dict:
    """Per stage: from the first task log line's timestamp to the last completion file."""
    out = {}
    for st in ("a", "b", "c"):
        d = work / "logs" / st
        logs = sorted((d / "logs").glob("*.log")) if (d / "logs").is_dir() else []
        comps = sorted((d / "completions").glob("*")) if (d / "completions").is_dir() else []
        if logs and comps:
            from datetime import datetime

            start = min(datetime.strptime(f.read_text(errors="replace")[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp()
                        for f in logs)
            end = max(f.stat().st_mtime for f in comps)
            out[st] = round(end - start, 1)
    return out


if __name__ == "__main__":
    main()
