"""Hand-run benchmark: recall and false merges of dedup on the planted set, at the pretraining
recipe's own dedup settings (``datasets/cumed-pretrain.yaml`` ``steps.dedup`` over the
``DedupConfig`` defaults).

    .venv/bin/python benchmarks/dedup_recall.py --raw ../shared/data/raw [--per-kind 400] [--distinct 200]

Corpus: every enabled source of the pretraining recipe, read with the recipe's own readers (no
cleaning or filtering: the documents as read; read errors skipped). Real duplicates among them
are found first and are not planting pools.

Positives (``curation.dedup.plant.plant``): ``--per-kind`` copies per alteration of real documents
>= 200 characters; a copy is found when it ends in its original's cluster.

Negatives (``curation.dedup.plant.plant_distinct``, "distinct but similar"): twins of real
Toyhom consultations (``toyhom_csv``) with one drug / dose / age / symptom changed, or all of them
(``case``), in two scopes:

- ``question``: the question alone (title + ask, both lines as in the document), original and
  twin added to the corpus: two questions that share a template;
- ``consultation``: the whole document (title, ask and the doctor's answer), every occurrence of
  the value changed, so the answer follows the question; the original is already in the corpus.

A negative is a false merge when twin and original end in one cluster. For every negative pair
the actual Jaccard of the two canonical 5-gram sets is reported too (the margin to the threshold).

``--decontamination``: also the decontamination rules on the real consultations (Toyhom CSV and
text blocks as the recipe reads them) against the default evaluation sets: how many the single-span
rule, the default coverage rule and each half of it remove (the "18 %" of issue #17).

Writes the tables to stdout and to ``benchmarks/out/dedup_recall.md`` (git-ignored).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECIPE = ROOT / "datasets" / "cumed-pretrain.yaml"


def recipe_dedup_options(recipe) -> dict:
    """The recipe's dedup options that decide (threshold, n, bands, rows, ...), not ``tasks``."""
    from curation.build.steps import CLUSTER_KEYS, SIG_KEYS

    cfg = dict(recipe.step("dedup") or {})
    return {k: v for k, v in cfg.items() if k in (SIG_KEYS | CLUSTER_KEYS) - {"partitions", "synthetic_sources"}}


def read_corpus(recipe) -> list[tuple[str, str, dict]]:
    from loguru import logger

    from curation.build.reader import _source_dict
    from curation.readers import make_reader

    logger.disable("datatrove")
    docs = []
    for s in recipe.sources:
        if not s.enabled:
            continue
        reader = make_reader({**_source_dict(s), "path": s.path}, str(Path(recipe.raw).resolve()))
        for doc in reader.run():
            if doc.metadata.get("read_error") or not doc.text.strip():
                continue
            docs.append((doc.id, doc.text, {"source": s.name, "synthetic": bool(doc.metadata.get("synthetic"))}))
    return docs


def pair_jaccards(pairs: list[tuple[str, str]], n: int) -> list[float]:
    from curation.dedup.canonical import canonical, codepoints, jaccard, ngram_sets

    out = []
    for a, b in pairs:
        sa, sb = ngram_sets([codepoints(canonical(a)), codepoints(canonical(b))], n)
        out.append(jaccard(sa, sb))
    return out


def run(raw: Path, per_kind: int, distinct: int, seed: int) -> tuple[str, dict]:
    import numpy as np

    from curation.dedup import DedupConfig, find_duplicates
    from curation.dedup.plant import KINDS, DISTINCT_KINDS, false_merges, plant, plant_distinct, score, slot_lexicon
    from curation.recipe import load_recipe

    recipe = load_recipe(RECIPE, raw)
    opts = recipe_dedup_options(recipe)
    cfg = DedupConfig(**{k: v for k, v in opts.items() if k in DedupConfig.__dataclass_fields__})
    t0 = time.perf_counter()
    docs = read_corpus(recipe)
    t_read = time.perf_counter() - t0
    natural = find_duplicates(docs, **opts)
    busy = {d.id for d in natural} | {d.duplicate_of for d in natural}
    pool = [(i, t) for i, t, _ in docs if i not in busy]
    copies, truth = plant(pool, per_kind=per_kind, seed=seed)

    lexicon = slot_lexicon(raw)
    planted_from = {o for _, o, _ in truth}  # negatives from other originals than the positives
    toy = [(i, t) for i, t, m in docs if m["source"] == "toyhom_csv" and i not in busy and i not in planted_from
           and t.count("\n") >= 2]
    questions = [(f"{i}~question", "\n".join(t.split("\n")[:2])) for i, t in toy]
    q_twins, q_truth = plant_distinct(questions, distinct, lexicon, seed=seed)
    c_twins, c_truth = plant_distinct(toy, distinct, lexicon, seed=seed + 1)
    used_q = {o for _, o, _ in q_truth}
    extra = [(i, t, {"source": "planted"}) for i, t in copies + [q for q in questions if q[0] in used_q] + q_twins + c_twins]

    t1 = time.perf_counter()
    dec = find_duplicates(docs + extra, **opts)
    t_dedup = time.perf_counter() - t1
    s = score(dec, truth, planted_ids={i for i, _ in copies})
    fq, fc = false_merges(dec, q_truth), false_merges(dec, c_truth)
    text = {i: t for i, t, _ in docs + extra}
    jq = dict(zip([t for t, _, _ in q_truth], pair_jaccards([(text[t], text[o]) for t, o, _ in q_truth], cfg.n)))
    jc = dict(zip([t for t, _, _ in c_truth], pair_jaccards([(text[t], text[o]) for t, o, _ in c_truth], cfg.n)))
    jp = dict(zip([c for c, _, _ in truth], pair_jaccards([(text[c], text[o]) for c, o, _ in truth], cfg.n)))

    # The corpus's own near-duplicate removals, by source, and those whose two texts carry different numbers.
    num = re.compile(r"\d+(?:\.\d+)?")
    src = {i: m["source"] for i, _, m in docs}
    near_src = Counter(src[d.id] for d in natural if d.kind == "near")
    num_diff = Counter(src[d.id] for d in natural if d.kind == "near"
                       and sorted(num.findall(text[d.id])) != sorted(num.findall(text[d.duplicate_of])))

    L = [f"Settings: `{RECIPE.relative_to(ROOT)}` steps.dedup {opts} over `DedupConfig` defaults "
         f"(n={cfg.n}, bands×rows={cfg.bands}×{cfg.rows}, threshold={cfg.threshold}, est_margin={cfg.est_margin}, "
         f"max_bucket={cfg.max_bucket}).",
         f"Corpus: {len(docs):,} documents of the recipe's enabled sources as read ({t_read:.1f} s to read); "
         f"{len(natural):,} natural duplicate removals ({sum(near_src.values()):,} near). One `find_duplicates` run over "
         f"corpus + planted: {len(docs) + len(extra):,} documents, {t_dedup:.1f} s.", "",
         "Positives (copies that must be merged with their original):", "",
         "| alteration | copies | found | recall | Jaccard min | Jaccard 5th pct | Jaccard median |",
         "|---|---:|---:|---:|---:|---:|---:|"]
    by_kind = Counter(k for *_, k in truth)
    for k in KINDS:
        r = s["per_kind"].get(k, 0.0)
        js = np.array([jp[c] for c, _, kk in truth if kk == k])
        L.append(f"| {k} | {by_kind[k]} | {round(r * by_kind[k])} | {r:.3f} | {js.min():.3f} | "
                 f"{np.percentile(js, 5):.3f} | {np.median(js):.3f} |")
    L.append(f"| **overall** | {len(truth)} | {round(s['recall'] * len(truth))} | **{s['recall']:.3f}** | | | |")
    L += ["", f"Pair precision over predicted pairs that involve a copy: {s['precision']:.4f} "
          f"({s['false_pairs']} wrong pairs).", "",
          "Negatives (distinct but similar: twins that must stay apart from their original):", "",
          "| changed | scope | pairs | merged | Jaccard median | Jaccard max | pairs ≥ threshold |",
          "|---|---|---:|---:|---:|---:|---:|"]
    for scope, fm, tr, jj in (("question", fq, q_truth, jq), ("consultation", fc, c_truth, jc)):
        for k in DISTINCT_KINDS:
            js = np.array([jj[t] for t, _, kk in tr if kk == k])
            m, n = fm["per_kind"].get(k, (0, 0))
            if not n:
                continue
            L.append(f"| {k} | {scope} | {n} | {m} ({m / n:.1%}) | {np.median(js):.3f} | {js.max():.3f} | "
                     f"{int((js >= cfg.threshold).sum())} |")
        L.append(f"| **all** | {scope} | {fm['pairs']} | **{fm['merged']}** | | | |")
    L += ["", "Natural near-duplicate removals of the corpus, by source (and those whose two texts' numbers differ): "
          + ", ".join(f"{k} {v:,} ({num_diff.get(k, 0)})" for k, v in near_src.most_common()) + "."]
    return "\n".join(L), {"recall": s["recall"], "per_kind": s["per_kind"], "false_question": fq, "false_consultation": fc}


DECON_RULES = (
    ("single span (`min_spans: null, min_coverage: null`)", {"min_spans": None, "min_coverage": None}),
    ("default coverage rule (50 spans or 0.5 of an item)", {}),
    ("`min_spans: null` only (0.5 of an item)", {"min_spans": None}),
    ("`min_coverage: null` only (50 spans)", {"min_coverage": None}),
)


def decontamination_rules(raw: Path) -> str:
    from curation.recipe import load_recipe
    from curation.steps.decontaminate import DEFAULT_SETS, Decontaminate

    recipe = load_recipe(RECIPE, raw)
    docs = {name: [t for i, t, m in read_corpus(recipe) if m["source"] == name] for name in ("toyhom_csv", "toyhom_im_blocks")}
    L = ["| rule | " + " | ".join(f"{k} ({len(v):,})" for k, v in docs.items()) + " |", "|---|" + "---:|" * len(docs)]
    for label, kw in DECON_RULES:
        step = Decontaminate(list(DEFAULT_SETS), raw=raw, cache=False, **kw)
        cells = []
        for texts in docs.values():
            hits = [h for i in range(0, len(texts), 512) for h in step.contaminating_items(texts[i : i + 512])]
            n = sum(h is not None for h in hits)
            cells.append(f"{n:,} ({n / len(texts):.1%})")
        L.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(L)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", type=Path, default=ROOT.parent / "shared" / "data" / "raw")
    ap.add_argument("--per-kind", type=int, default=400, help="positive copies per alteration")
    ap.add_argument("--distinct", type=int, default=200, help="negative twins per kind and scope")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--decontamination", action="store_true", help="also the decontamination rules on the consultations")
    a = ap.parse_args()
    md, _ = run(a.raw, a.per_kind, a.distinct, a.seed)
    if a.decontamination:
        md += "\n\nDecontamination rules, documents removed:\n\n" + decontamination_rules(a.raw)
    print(md)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "dedup_recall.md").write_text(md + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
