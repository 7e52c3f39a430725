"""Hand-run benchmark (issue #17, "Recall at the default threshold"): recall on planted near-copies,
merged distinct questions and false merges of dedup, under the verification rules side by side,
at the pretraining recipe's own dedup settings (``datasets/cumed-pretrain.yaml`` ``steps.dedup``
over the ``DedupConfig`` defaults).

    .venv/bin/python benchmarks/dedup_recall.py --raw ../shared/data/raw [--per-kind 400] [--distinct 200]

Rules compared (``DedupConfig.verify``): ``jaccard`` at 0.75 (the rule before issue #17), ``jaccard``
at 0.6 (the issue's "at 0.6 it finds 97 %"), and ``coverage`` (the default now: covered shares,
Jaccard >= 0.75 without two own passages; ``curation.dedup.core.DedupConfig``).

Corpus: every enabled source of the pretraining recipe, read with the recipe's own readers (no
cleaning or filtering: the documents as read; read errors skipped). Documents in a natural
duplicate pair under any rule are not planting pools.

Positives (``curation.dedup.plant.plant``, the issue's alterations ``KINDS``): ``--per-kind``
copies per alteration of real documents of >= ``--min-chars`` (50) characters (short texts
included: the issue's misses are there); a copy is found when it ends in its original's cluster.
Each copy's pair is also followed through the stages: candidate (shares an LSH band with its
original), estimate (sketch estimate >= the rule's floor), verified and clustered.

Negatives, the issue's: distinct patient questions that share a templated doctor answer
(``plant.templated_answer_pairs``: answers' 5-gram Jaccard >= 0.5, questions' < 0.4), found in
Huatuo-26M test (its items added to the corpus as ``question\\nanswer``) and in the Toyhom
consultations as the recipe reads them. A pair is a merged distinct question when its two
documents end in one cluster.

Stricter negatives (``plant.plant_distinct``, a known limit): twins of real Toyhom consultations
with one drug / dose / age / symptom changed, or all of them (``case``), as a question alone
(title + ask) and as the whole consultation.

Real corpus: the near-duplicate decisions of each rule on the corpus as read, and which change
against the rule before (by source, with examples).

``--decontamination``: also the decontamination rules on the real consultations (Toyhom CSV and
text blocks as the recipe reads them) against the default evaluation sets.

Writes the tables to stdout and to ``benchmarks/out/dedup_recall.md`` (git-ignored).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECIPE = ROOT / "datasets" / "cumed-pretrain.yaml"
SHORT = 200  # originals shorter than this are reported apart ("short texts")


def recipe_dedup_options(recipe) -> dict:
    """The recipe's dedup options that decide (threshold, n, bands, rows, verify ...), not ``tasks``."""
    from curation.build.steps import CLUSTER_KEYS, SIG_KEYS

    cfg = dict(recipe.step("dedup") or {})
    return {k: v for k, v in cfg.items() if k in (SIG_KEYS | CLUSTER_KEYS) - {"partitions", "synthetic_sources"}}


def rules(opts: dict) -> dict[str, dict]:
    """The rules compared: label -> ``find_duplicates`` options (the recipe's, rule overridden)."""
    base = {k: v for k, v in opts.items() if k != "verify"}
    return {
        "jaccard ≥ 0.75 (before)": {**base, "verify": "jaccard", "threshold": 0.75},
        "jaccard ≥ 0.6": {**base, "verify": "jaccard", "threshold": 0.6},
        "coverage (default)": {**opts},
    }


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


def pair_measures(pairs: list[tuple[str, str]], n: int = 5) -> list[dict]:
    """Per pair of texts: actual Jaccard, covered share of each text (low, high), longest own
    passage of each (``canonical.overlap``)."""
    import numpy as np

    from curation.dedup.canonical import canonical_batch, ngram_shingles, overlap

    out = []
    for a, b in pairs:
        cps, lens = canonical_batch([a, b])
        sa, sb = ngram_shingles(list(np.split(cps, [lens[0]])), n)
        j, (ua, ra), (ub, rb) = overlap(sa, sb, n)
        ca, cb = (1 - ua / sa.length if sa.length else 1.0), (1 - ub / sb.length if sb.length else 1.0)
        out.append({"j": j, "cover_lo": min(ca, cb), "cover_hi": max(ca, cb), "own": min(ra, rb)})
    return out


def stage_flags(pairs: list[tuple[str, str]], cfg) -> tuple[list[bool], list[float]]:
    """Per pair of texts: whether LSH makes it a candidate (one of ``cfg.bands`` band hashes
    equal) and its sketch estimate (what the estimate filter reads)."""
    from curation.dedup.canonical import canonical_batch
    from curation.dedup.core import band_hashes, estimated_similarity, signatures, sketch

    cand, est = [], []
    for s in range(0, len(pairs), 1000):
        chunk = pairs[s : s + 1000]
        cps, lens = canonical_batch([t for p in chunk for t in p])
        sig = signatures(cps, lens, cfg)
        bands, sk = band_hashes(sig, cfg), sketch(sig)
        cand += (bands[0::2] == bands[1::2]).any(axis=1).tolist()
        est += estimated_similarity(sk[0::2], sk[1::2]).tolist()
    return cand, est


def timed_runs(docs, rule_opts: dict, repeat: int = 3) -> tuple[list, dict, float]:
    """``find_duplicates`` ``repeat`` times: (decisions, stats, median wall seconds)."""
    from curation.dedup import find_duplicates

    walls = []
    for _ in range(repeat):
        stats: dict = {}
        t0 = time.perf_counter()
        dec = find_duplicates(docs, stats=stats, **rule_opts)
        walls.append(time.perf_counter() - t0)
    return dec, stats, statistics.median(walls)


def run(raw: Path, per_kind: int, distinct: int, seed: int, min_chars: int) -> tuple[str, dict]:
    import numpy as np

    from curation.dedup import DedupConfig, find_duplicates
    from curation.dedup.plant import (
        DISTINCT_KINDS, KINDS, false_merges, huatuo_qa, last_line_qa, merged_pairs, plant, plant_distinct, score,
        slot_lexicon, templated_answer_pairs)
    from curation.recipe import load_recipe

    recipe = load_recipe(RECIPE, raw)
    opts = recipe_dedup_options(recipe)
    R = rules(opts)
    cfgs = {k: DedupConfig(**{f: v for f, v in o.items() if f in DedupConfig.__dataclass_fields__}) for k, o in R.items()}
    t0 = time.perf_counter()
    docs = read_corpus(recipe)
    t_read = time.perf_counter() - t0
    text = {i: t for i, t, _ in docs}
    src = {i: m["source"] for i, _, m in docs}

    # the corpus alone: natural decisions and time per rule
    natural, nat_stats, nat_wall = {}, {}, {}
    for k, o in R.items():
        natural[k], nat_stats[k], nat_wall[k] = timed_runs(docs, o)
    busy = {x for dec in natural.values() for d in dec for x in (d.id, d.duplicate_of)}

    # negatives of the issue: distinct questions sharing a templated answer
    hq = huatuo_qa(raw)
    toy_docs = [(i, t) for i, t, m in docs if m["source"] in ("toyhom_csv", "toyhom_im_blocks")]
    neg = {"Huatuo-26M test": templated_answer_pairs(hq), "Toyhom": templated_answer_pairs(last_line_qa(toy_docs))}
    hq_text = {i: f"{q}\n{a}" for i, q, a in hq}
    in_neg = {x for ps in neg.values() for p in ps for x in p[:2]}
    huatuo_docs = [(i, hq_text[i], {"source": "huatuo26m_test"}) for i in sorted(in_neg & set(hq_text))]
    text.update(hq_text)

    # positives: the alterations, on originals outside every natural pair and negative
    pool = [(i, t) for i, t, _ in docs if i not in busy and i not in in_neg]
    copies, truth = plant(pool, per_kind=per_kind, seed=seed, min_chars=min_chars)
    text.update(copies)

    # stricter negatives: twins (a known limit), from other consultations than the above
    lexicon = slot_lexicon(raw)
    used = {o for _, o, _ in truth} | in_neg
    toy = [(i, t) for i, t, m in docs if m["source"] == "toyhom_csv" and i not in busy and i not in used
           and t.count("\n") >= 2]
    questions = [(f"{i}~question", "\n".join(t.split("\n")[:2])) for i, t in toy]
    q_twins, q_truth = plant_distinct(questions, distinct, lexicon, seed=seed)
    c_twins, c_truth = plant_distinct(toy, distinct, lexicon, seed=seed + 1)
    used_q = {o for _, o, _ in q_truth}
    extra = [(i, t, {"source": "planted"}) for i, t in
             copies + [q for q in questions if q[0] in used_q] + q_twins + c_twins] + huatuo_docs
    text.update({i: t for i, t, _ in extra})

    every = docs + extra
    res = {}
    for k, o in R.items():
        t1 = time.perf_counter()
        dec = find_duplicates(every, **o)
        res[k] = {"dec": dec, "wall": time.perf_counter() - t1, "score": score(dec, truth, planted_ids={i for i, _ in copies}),
                  "neg": {s: merged_pairs(dec, ps) for s, ps in neg.items()},
                  "twins": {"question": false_merges(dec, q_truth), "consultation": false_merges(dec, c_truth)}}
        keeper = {d.id: d.duplicate_of for d in dec}
        res[k]["found"] = {c: keeper.get(c, c) == keeper.get(o_, o_) for c, o_, _ in truth}

    # the stages of each planted pair
    pairs = [(text[o], text[c]) for c, o, _ in truth]
    meas = pair_measures(pairs)
    cand, est = stage_flags(pairs, cfgs["coverage (default)"])
    kind_of = [k for *_, k in truth]
    short = [len(text[o]) < SHORT for _, o, _ in truth]
    names = list(R)

    L = [f"Settings: `{RECIPE.relative_to(ROOT)}` steps.dedup {opts} over `DedupConfig` defaults. "
         f"Corpus: {len(docs):,} documents of the recipe's enabled sources as read ({t_read:.1f} s to read). "
         f"Planted: {len(truth):,} copies ({per_kind} per alteration, originals ≥ {min_chars} characters, "
         f"{sum(short):,} of them < {SHORT}); with the negatives and twins {len(every):,} documents in one "
         "`find_duplicates` run per rule: " + ", ".join(f"{k} {v['wall']:.1f} s" for k, v in res.items()) + ".", "",
         "**Recall per alteration** (found = the copy ends in its original's cluster; short = originals "
         f"< {SHORT} characters; J = actual 5-gram Jaccard of copy and original; cover = the lower covered share):", "",
         "| alteration | copies (short) | J median | J 5th pct | cover 5th pct | LSH candidate | " +
         " | ".join(f"{k}: all / short" for k in names) + " |",
         "|---|---:|---:|---:|---:|---:|" + "---:|" * len(names)]
    for kind in KINDS:
        idx = [i for i, k in enumerate(kind_of) if k == kind]
        sidx = [i for i in idx if short[i]]
        js = np.array([meas[i]["j"] for i in idx])
        cl = np.array([meas[i]["cover_lo"] for i in idx])
        cells = []
        for k in names:
            f = [res[k]["found"][truth[i][0]] for i in idx]
            fs = [res[k]["found"][truth[i][0]] for i in sidx]
            cells.append(f"{np.mean(f):.3f} / {np.mean(fs) if fs else float('nan'):.3f}")
        L.append(f"| {kind} | {len(idx)} ({len(sidx)}) | {np.median(js):.3f} | {np.percentile(js, 5):.3f} | "
                 f"{np.percentile(cl, 5):.3f} | {np.mean([cand[i] for i in idx]):.3f} | " + " | ".join(cells) + " |")
    L.append(f"| **overall** | {len(truth)} ({sum(short)}) | | | | {np.mean(cand):.3f} | " + " | ".join(
        f"**{res[k]['score']['recall']:.3f}** / {np.mean([res[k]['found'][truth[i][0]] for i in range(len(truth)) if short[i]]):.3f}"
        for k in names) + " |")
    L += ["", "Pair precision over predicted pairs that involve a copy (a copy merged with anything but its "
          "original's cluster is a wrong pair): " + ", ".join(
              f"{k} {res[k]['score']['precision']:.4f} ({res[k]['score']['false_pairs']} wrong)" for k in names) + "."]

    # where the misses are lost
    floor = {k: cfgs[k].estimate_floor for k in names}
    L += ["", "**Where the planted pairs are lost** (copies not found, by stage): not an LSH candidate of "
          "28 × 4 bands / candidate but below the rule's estimate floor / verified and rejected (or clustered "
          "elsewhere):", "",
          "| rule | estimate floor | not found | not a candidate | below the floor | rejected at verification |",
          "|---|---:|---:|---:|---:|---:|"]
    for k in names:
        miss = [i for i in range(len(truth)) if not res[k]["found"][truth[i][0]]]
        nc = sum(not cand[i] for i in miss)
        bf = sum(cand[i] and est[i] < floor[k] for i in miss)
        L.append(f"| {k} | {floor[k]:.2f} | {len(miss)} | {nc} | {bf} | {len(miss) - nc - bf} |")
    jj = np.array([m["j"] for m in meas])
    band = (jj >= 0.5) & (jj < 0.75)
    theo = np.mean([1 - (1 - x ** 4) ** 28 for x in jj[band]]) if band.any() else float("nan")
    L += ["", f"Planted pairs at Jaccard 0.5-0.75: {int(band.sum())}; LSH candidates among them "
          f"{np.mean(np.array(cand)[band]):.3f} (1-(1-J⁴)²⁸ averaged over them: {theo:.3f})."]

    # negatives
    L += ["", "**Distinct questions sharing a templated answer** (the issue's negatives; merged = the two "
          "documents in one cluster):", "",
          "| source | pairs | J median | J max | cover (low) max | cover (high) max | " + " | ".join(names) + " |",
          "|---|---:|---:|---:|---:|---:|" + "---:|" * len(names)]
    for s, ps in neg.items():
        m = pair_measures([(text[a], text[b]) for a, b, *_ in ps])
        L.append(f"| {s} | {len(ps)} | {np.median([x['j'] for x in m]):.3f} | {max(x['j'] for x in m):.3f} | "
                 f"{max(x['cover_lo'] for x in m):.3f} | {max(x['cover_hi'] for x in m):.3f} | "
                 + " | ".join(str(len(res[k]["neg"][s])) for k in names) + " |")
    L.append(f"| **all** | {sum(map(len, neg.values()))} | | | | | " + " | ".join(
        f"**{sum(len(v) for v in res[k]['neg'].values())}**" for k in names) + " |")
    for k in names:
        for s, ps in res[k]["neg"].items():
            for a, b in ps[:3]:
                L.append(f"- {k}, {s}: `{a}` ~ `{b}`: " + repr(text[a][:40]) + " ~ " + repr(text[b][:40]))

    # twins
    L += ["", "**Twins** (stricter negatives, a known limit: one drug / dose / age / symptom changed; merged / pairs):", "",
          "| scope | changed | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names)]
    for scope in ("question", "consultation"):
        for kind in DISTINCT_KINDS:
            cells = []
            for k in names:
                m, n_ = res[k]["twins"][scope]["per_kind"].get(kind, (0, 0))
                cells.append(f"{m} / {n_}")
            L.append(f"| {scope} | {kind} | " + " | ".join(cells) + " |")
        L.append(f"| {scope} | **all** | " + " | ".join(
            f"**{res[k]['twins'][scope]['merged']}** / {res[k]['twins'][scope]['pairs']}" for k in names) + " |")

    # the real corpus
    base = names[0]
    L += ["", "**The real corpus** (the documents as read, no planted ones): near-duplicate removals per rule, "
          f"and against `{base}`: removals added / no longer made (by source), and removals kept with another "
          "keeper; `find_duplicates` wall time (median of 3) and the pairs verified:", "",
          "| rule | near removals | added | no longer | keeper changed | wall s | checked pairs | verifications |",
          "|---|---:|---:|---:|---:|---:|---:|---:|"]
    old = {d.id: d for d in natural[base] if d.kind == "near"}
    changes = {}
    for k in names:
        new = {d.id: d for d in natural[k] if d.kind == "near"}
        allnew = {d.id: d for d in natural[k]}
        allold = {d.id: d for d in natural[base]}
        added = [d for i, d in new.items() if i not in allold]
        lost = [d for i, d in old.items() if i not in allnew]
        moved = [d for i, d in allnew.items() if i in allold and allold[i].duplicate_of != d.duplicate_of]
        changes[k] = (added, lost, moved)
        st = nat_stats[k]
        fmt = lambda ds: f"{len(ds):,}" + (" (" + ", ".join(f"{s} {c}" for s, c in Counter(src[d.id] for d in ds).most_common()) + ")" if ds else "")
        L.append(f"| {k} | {len(new):,} | {fmt(added)} | {fmt(lost)} | {len(moved):,} | {nat_wall[k]:.2f} | "
                 f"{st.get('checked_pairs', 0):,} | {st.get('jaccard_checks', 0):,} |")
    added, lost, _ = changes[names[-1]]
    ex = lambda ds: [(d.id, d.duplicate_of, pair_measures([(text[d.id], text[d.duplicate_of])])[0]) for d in ds]
    L += ["", f"Examples, `{names[-1]}` against `{base}` (first line of each text):", ""]
    for title, ds in (("newly merged", added), ("no longer merged", lost)):
        for a, b, m in ex(sorted(ds, key=lambda d: d.id)[:: max(1, len(ds) // 10)][:10]):
            L.append(f"- {title} ({src[a]}; J {m['j']:.2f}, cover {m['cover_lo']:.2f}/{m['cover_hi']:.2f}, own passage "
                     f"{m['own']}): {text[a].splitlines()[0][:30]!r} ~ {text[b].splitlines()[0][:30]!r}")
    summary = {"recall": {k: res[k]["score"]["per_kind"] for k in names},
               "negatives_merged": {k: sum(len(v) for v in res[k]["neg"].values()) for k in names}}
    return "\n".join(L), summary


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
    ap.add_argument("--min-chars", type=int, default=50, help="shortest original of a planted copy")
    ap.add_argument("--distinct", type=int, default=200, help="negative twins per kind and scope")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--decontamination", action="store_true", help="also the decontamination rules on the consultations")
    a = ap.parse_args()
    md, _ = run(a.raw, a.per_kind, a.distinct, a.seed, a.min_chars)
    if a.decontamination:
        md += "\n\nDecontamination rules, documents removed:\n\n" + decontamination_rules(a.raw)
    print(md)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "dedup_recall.md").write_text(md + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
