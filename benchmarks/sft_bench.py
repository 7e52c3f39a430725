"""Hand-run benchmark of the SFT build (``datasets/cumed-sft.yaml``): time, peak memory, scaling.

    .venv/bin/python benchmarks/sft_bench.py --raw ../shared/data/raw [--scales 1,4,16] [--tmp DIR] [--select all]

``--select all`` overrides the recipe's department selection (urology/andrology keeps ~1 % of the
dialogues) so that decontamination, dedup and splits see every dialogue: the stress case.

For each scale r every file of every enabled source of the SFT recipe is written r times into a
temporary raw folder (``<name>.rNN.<ext>``, same format and encoding: GB18030 stays GB18030),
replica k>0 with every common CJK character mapped through the fixed random permutation
``dedup_bench.replica_table(k)`` (the helpers of ``pipeline_scaling.py``): duplicates stay
duplicates within a replica, replicas are unrelated, so the dialogues grow r-fold with the same
duplicate structure. Only content is permuted; left alone are:

- the CSV header, JSON keys, ASCII role names (``human``/``gpt``, ``<user>:``/``<bot>:``);
- the Chinese inline role markers (``病人：`` ``医生：`` ``患者：`` ``用户：``), else BianQue's
  replicas would fail role attribution;
- the source department labels (Toyhom ``department``, CMtMedQA ``cate1``/``cate2``), and the
  CMeKG department lexicon gets every replica's permuted subjects with their unchanged
  ``就诊科室``: the department selection keeps the same share of every replica (without it the
  urology/andrology selection would drop almost every permuted dialogue and the later steps
  would not grow).

The recipe copy's paths become globs over the replicas; the evaluation-set files
(decontamination) are linked unchanged, so only replica 0 can be contaminated.

Each build runs in its own subprocess (``build_conversations``, fresh store, ``CUMED_CACHE`` in
the temp folder). Peak RSS = maximum over time of the summed RSS of the build process and its
children (psutil, sampled every 0.2 s); the child also reports its own ru_maxrss.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline_scaling import _glob_path, _replica_name, run_sampled  # noqa: E402

RECIPE = ROOT / "datasets" / "cumed-sft.yaml"
# Chinese inline speaker names (curation.sft.roles.INLINE_MARKER) kept as written
_MARKER = re.compile(r"(病人|患者|用户|医生)([ \t]*[：:])")
LABEL_KEYS = {"cate1", "cate2", "department"}  # source department labels: not content


def perm_text(text: str, tab) -> str:
    """Permute the CJK characters of ``text`` except the inline role markers."""
    if tab is None:
        return text
    out, last = [], 0
    for m in _MARKER.finditer(text):
        out.append(text[last:m.start()].translate(tab))
        out.append(m.group(0))
        last = m.end()
    out.append(text[last:].translate(tab))
    return "".join(out)


def _perm_json(x, tab, key=None):
    if isinstance(x, str):
        return x if key in LABEL_KEYS else perm_text(x, tab)
    if isinstance(x, list):
        return [_perm_json(v, tab, key) for v in x]
    if isinstance(x, dict):
        return {k: _perm_json(v, tab, k) for k, v in x.items()}
    return x


def transform(text: str, reader: str, options: dict, tab) -> str:
    if tab is None:
        return text
    if reader == "conv_csv":
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=options.get("delimiter", ",")))
        if not rows:
            return text
        header, keep = rows[0], set()
        for f in ("department_field",):
            if options.get(f) in header:
                keep.add(header.index(options[f]))
        buf = io.StringIO(newline="")
        w = csv.writer(buf, delimiter=options.get("delimiter", ","), lineterminator="\n")
        w.writerow(header)
        for row in rows[1:]:
            w.writerow([c if i in keep else perm_text(c, tab) for i, c in enumerate(row)])
        return buf.getvalue()
    if reader == "conv_json":
        try:
            if options.get("format") == "jsonl":
                return "\n".join(json.dumps(_perm_json(json.loads(line), tab), ensure_ascii=False) if line.strip() else line
                                 for line in text.split("\n"))
            return json.dumps(_perm_json(json.loads(text), tab), ensure_ascii=False)
        except json.JSONDecodeError:  # a deliberately broken file: keys are ASCII, permute the text
            return perm_text(text, tab)
    return perm_text(text, tab)  # conv_text_blocks


def replicate(raw: Path, out: Path, scale: int, select: str | None = None) -> tuple[Path, float, int]:
    """Write the replicated raw folder and recipe; returns (recipe path, input MB, files)."""
    from cumed.eval_sets import EVAL_FILES
    from curation.recipe import load_recipe
    from curation.sft.department import KG_SUBJECTS, KG_TRIPLES
    from dedup_bench import replica_table

    recipe = load_recipe(RECIPE, raw)
    spec = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    tabs = [None] + [replica_table(k) for k in range(1, scale)]
    mb, nfiles = 0.0, 0
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
                nfiles += 1
        src["path"] = _glob_path(src["path"])
    for rel in [r for rels in EVAL_FILES.values() for r in rels]:
        if not (out / rel).exists():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink((raw / rel).resolve(), out / rel)
    # department lexicon: every replica's permuted subjects, departments (objects) unchanged
    (out / KG_TRIPLES).parent.mkdir(parents=True, exist_ok=True)
    with open(raw / KG_TRIPLES, encoding="utf-8") as f:
        dept_lines = [line for line in f if "\t就诊科室\t" in line]
    with open(out / KG_TRIPLES, "w", encoding="utf-8") as w:
        w.write((raw / KG_TRIPLES).read_text(encoding="utf-8"))
        for t in tabs[1:]:
            for line in dept_lines:
                subj, rest = line.split("\t", 1)
                w.write(subj.translate(t) + "\t" + rest)
    if (raw / KG_SUBJECTS).is_file():
        lines = [line for line in (raw / KG_SUBJECTS).read_text(encoding="utf-8").splitlines() if line.strip()]
        with open(out / KG_SUBJECTS, "w", encoding="utf-8") as w:
            for t in tabs:
                for line in lines:
                    if t is None:
                        w.write(line + "\n")
                    else:
                        rec = json.loads(line)
                        w.write(json.dumps({**rec, "subject": rec["subject"].translate(t)}, ensure_ascii=False) + "\n")
    if select:  # e.g. "all": every department goes on to decontamination, dedup and splits
        spec["steps"]["department"] = {**(spec["steps"].get("department") or {}), "select": select}
    rp = out / "cumed-sft.yaml"
    rp.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return rp, mb, nfiles


def child_build(recipe: str, raw: str, store: str) -> None:
    from curation.sft.build import build_conversations
    from cumed.store import Store

    t0 = time.perf_counter()
    dv, stats = build_conversations(recipe, raw, Store(store), progress=False)
    wall = time.perf_counter() - t0
    print(json.dumps({"wall_s": round(wall, 2), "read": stats["read"], "kept": stats["kept"], "kept_rows": stats["kept_rows"],
                      "removed": stats["removed"], "removed_by": stats["removed_by_reason"],
                      "splits": stats["splits"]["rows"], "ru_maxrss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)},
                     ensure_ascii=False))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", default=str(ROOT.parent / "shared/data/raw"))
    ap.add_argument("--scales", default="1,4,16")
    ap.add_argument("--tmp", default=tempfile.gettempdir())
    ap.add_argument("--select", default=None, help="override steps.department.select (e.g. all)")
    ap.add_argument("--out", default=None, help="results JSON (default <tmp>/cumed_sft_bench.json)")
    ap.add_argument("--child", nargs="+")
    a = ap.parse_args()
    if a.child:
        return child_build(*a.child[1:4])
    results = []
    for scale in [int(s) for s in a.scales.split(",")]:
        root = Path(a.tmp) / f"cumed_sft_bench_{scale}"
        shutil.rmtree(root, ignore_errors=True)
        t0 = time.perf_counter()
        recipe, mb, nfiles = replicate(Path(a.raw).resolve(), root / "raw", scale, a.select)
        prep = time.perf_counter() - t0
        env = {**os.environ, "CUMED_CACHE": str(root / "cache")}
        wall, peak, out = run_sampled([sys.executable, __file__, "--child", "build", str(recipe), str(root / "raw"),
                                       str(root / "store")], env)
        res = json.loads(out.strip().splitlines()[-1])
        r = {"scale": scale, "files": nfiles, "MB": round(mb, 1), "prep_s": round(prep, 1), "read": res["read"],
             "kept": res["kept"], "kept_rows": res["kept_rows"], "removed": res["removed"], "wall_s": round(wall, 1),
             "build_s": res["wall_s"], "dialogues_per_s": round(res["read"] / res["wall_s"]),
             "peak_rss_tree_MB": round(peak / 2**20), "ru_maxrss_MB": res["ru_maxrss_MB"], "splits": res["splits"],
             "removed_by": res["removed_by"]}
        print(json.dumps(r, ensure_ascii=False), flush=True)
        results.append(r)
        shutil.rmtree(root, ignore_errors=True)
    base = results[0] if results else None
    for r in results:
        r["input_factor"] = round(r["read"] / base["read"], 2)
        r["time_factor"] = round(r["build_s"] / base["build_s"], 2)
        r["rss_factor"] = round(r["peak_rss_tree_MB"] / base["peak_rss_tree_MB"], 2)
    Path(a.out or Path(a.tmp, "cumed_sft_bench.json")).write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print("| scale | MB in | dialogues read | kept | build s | dialogues/s | peak RSS tree MB | time × | RSS × |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['scale']}× | {r['MB']} | {r['read']:,} | {r['kept']:,} | {r['build_s']} | {r['dialogues_per_s']:,} | "
              f"{r['peak_rss_tree_MB']:,} | {r['time_factor']} | {r['rss_factor']} |")


if __name__ == "__main__":
    main()
