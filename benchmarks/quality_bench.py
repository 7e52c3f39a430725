"""Quality classifier benchmark: jieba words vs character n-grams, on real labels.

Labels: real doctor answers (keep) vs GPT-3.5-generated answers (discard), from
``annotation.quality.weak_labels`` (Toyhom CSV answers + CMtMedQA doctor turns vs
Huatuo-Llama-Med-Chinese llama_data.json outputs), split 80/20 per source by hash.

Measures, for each tokenizer and seeds 0..S-1 (thread=1):
- held-out precision / recall / F1 (keep = positive, threshold 0.5), ROC-AUC, average precision;
- train time (tokenising + fastText fit) and scoring throughput (docs/s) on the held-out set
  and on the whole pretraining corpus text (every enabled source of datasets/cumed-pretrain.yaml,
  read with the project readers);
- generalisation to an unseen keep source (train without it, test on it + held-out discard);
- the majority-class baseline and a length-only baseline (score = number of characters), since
  GPT answers here are shorter than doctors' answers;
- the threshold for a target precision chosen on half of the held-out set, checked on the other.

Writes ``benchmarks/quality_bench.md`` and ``benchmarks/out/quality_pr.png`` (git-ignored);
``--store DIR`` also publishes the winning model (seed 0) as a versioned artifact.

    .venv/bin/python benchmarks/quality_bench.py [--seeds 3] [--target-precision 0.99] [--store store]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from curation.quality.tokenize import TOKENIZERS, tokenize  # noqa: E402
from annotation.quality.train import (  # noqa: E402
    DEFAULT_PARAMS, binary_metrics, choose_threshold, evaluate, pr_curve_plot, roc_auc, average_precision,
    train_classifier,
)
from annotation.quality.weak_labels import WEAK_SOURCES, load_weak_labels, source_lineage, split  # noqa: E402

RAW = Path(os.environ.get("CUMED_RAW", ROOT.parent / "shared" / "data" / "raw"))
OUT = ROOT / "benchmarks" / "out"
MD = ROOT / "benchmarks" / "quality_bench.md"


def fmt(x, nd=4):
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def mean_range(vals, nd=4):
    m = statistics.fmean(vals)
    return f"{m:.{nd}f}" + (f" ({min(vals):.{nd}f}–{max(vals):.{nd}f})" if max(vals) - min(vals) > 0 else "")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", default=str(RAW))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--target-precision", type=float, default=0.99)
    ap.add_argument("--store", default=None)
    ap.add_argument("--no-corpus", action="store_true", help="skip scoring the pretraining corpus")
    args = ap.parse_args()
    raw = Path(args.raw)
    load0 = os.getloadavg()[0]

    examples = load_weak_labels(raw)
    train, held = split(examples)
    y_train = np.array([e.label for e in train])
    y_held = np.array([e.label for e in held])
    counts = {s.name: (sum(e.source == s.name for e in train), sum(e.source == s.name for e in held)) for s in WEAK_SOURCES}
    print(f"{len(train)} train / {len(held)} held-out examples", counts, flush=True)

    results: dict[str, list[dict]] = {t: [] for t in TOKENIZERS}
    models = {}
    for tok in TOKENIZERS:
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            m = train_classifier(train, tokenizer=tok, seed=seed)
            train_s = time.perf_counter() - t0
            ev = evaluate(m, held, train_labels=y_train)
            ev.update(train_s=train_s, tokenize_s=m.params["tokenize_s"], fit_s=m.params["fit_s"])
            results[tok].append(ev)
            if seed == 0:
                models[tok] = m
            print(tok, seed, {k: round(v, 4) for k, v in ev.items() if isinstance(v, float)}, flush=True)

    # generalisation to an unseen keep source
    keep_sources = [s.name for s in WEAK_SOURCES if s.label == 1]
    loso: dict[str, dict[str, dict]] = {t: {} for t in TOKENIZERS}
    for tok in TOKENIZERS:
        for src in keep_sources:
            tr = [e for e in train if e.source != src]
            te = [e for e in held if e.source == src or e.label == 0]
            m = train_classifier(tr, tokenizer=tok, seed=0)
            loso[tok][src] = evaluate(m, te)
            print("unseen", tok, src, round(loso[tok][src]["f1"], 4), round(loso[tok][src]["roc_auc"], 4), flush=True)

    # baselines
    lengths_train = np.array([len(e.text) for e in train], dtype=float)
    lengths_held = np.array([len(e.text) for e in held], dtype=float)
    # best length threshold on the training set (by accuracy), applied to held-out
    cand = np.unique(lengths_train)
    acc = [((lengths_train >= c) == y_train).mean() for c in cand]
    len_thr = float(cand[int(np.argmax(acc))])
    len_m = binary_metrics(lengths_held, y_held, len_thr)
    len_auc = roc_auc(lengths_held, y_held)
    majority = int(y_train.mean() >= 0.5)
    maj = binary_metrics(np.full(len(y_held), float(majority)), y_held, 0.5)

    # winner: mean held-out F1; within 0.002 -> mean unseen-source F1; then scoring speed
    mean_f1 = {t: statistics.fmean(r["f1"] for r in results[t]) for t in TOKENIZERS}
    mean_loso = {t: statistics.fmean(v["f1"] for v in loso[t].values()) for t in TOKENIZERS}
    speed = {t: statistics.fmean(r["score_docs_per_s"] for r in results[t]) for t in TOKENIZERS}
    a, b = TOKENIZERS
    if abs(mean_f1[a] - mean_f1[b]) >= 0.002:
        winner = max(TOKENIZERS, key=lambda t: mean_f1[t]); why = "higher mean held-out F1"
    elif abs(mean_loso[a] - mean_loso[b]) >= 0.002:
        winner = max(TOKENIZERS, key=lambda t: mean_loso[t]); why = "held-out F1 tied (< 0.002 apart); higher F1 on unseen keep sources"
    else:
        winner = max(TOKENIZERS, key=lambda t: speed[t]); why = "F1 tied on held-out and unseen sources; faster scoring"
    print("winner", winner, why, flush=True)

    # threshold for a target precision: choose on one half of held-out, check on the other
    wm = models[winner]
    scores_held = wm.score([e.text for e in held])
    half = np.arange(len(held)) % 2 == 0
    thr = choose_threshold(scores_held[half], y_held[half], args.target_precision)
    calib = binary_metrics(scores_held[half], y_held[half], thr)
    check = binary_metrics(scores_held[~half], y_held[~half], thr)

    # PR curve
    curves = {f"fastText {t}": (models[t].score([e.text for e in held]), y_held) for t in TOKENIZERS}
    curves["length only"] = (lengths_held, y_held)
    png = pr_curve_plot(curves, OUT / "quality_pr.png", target_precision=args.target_precision,
                        points={f"{winner} @ t={thr:.3f} (other half)": (check["recall"], check["precision"])})
    print("wrote", png, flush=True)

    # scoring throughput on the pretraining corpus
    corpus_rows = []
    if not args.no_corpus:
        from filters_corpus import recipe_docs

        docs = recipe_docs(raw)
        texts = [t for _, t in docs]
        chars = sum(len(t) for t in texts)
        for tok in TOKENIZERS:
            m = models[tok]
            t0 = time.perf_counter()
            lines = [tokenize(t, tok) for t in texts]
            t1 = time.perf_counter()
            sc = np.concatenate([m.score_tokenized(lines[i:i + 512]) for i in range(0, len(lines), 512)])
            t2 = time.perf_counter()
            kept = {}
            for (src, _), s in zip(docs, sc):
                k = kept.setdefault(src, [0, 0])
                k[0] += 1
                k[1] += int(s >= (thr if tok == winner else 0.5))
            corpus_rows.append({"tok": tok, "docs": len(texts), "chars": chars, "tokenize_s": t1 - t0,
                                "predict_s": t2 - t1, "kept": kept})
            print("corpus", tok, len(texts), round(t1 - t0, 2), round(t2 - t1, 2), flush=True)

    # ---- markdown
    L = []
    L.append("# Quality classifier benchmark (`benchmarks/quality_bench.py`)\n")
    L.append(f"Measured on the project machine (2 cores, shared with other jobs: load average {load0:.1f} at start, "
             f"{os.getloadavg()[0]:.1f} at the end, so timings are noisy, quality numbers are not), fastText "
             f"{DEFAULT_PARAMS} with `thread=1`; {args.seeds} seeds per tokenizer (mean, min–max in brackets).\n")
    L.append("**Labels** (real data, `annotation/quality/weak_labels.py`): keep = real doctor answers "
             "(Toyhom 内科 CSV `answer`, CMtMedQA doctor turns), discard = GPT-3.5-generated answers "
             "(Huatuo-Llama-Med-Chinese `llama_data.json` `output`); exact duplicates removed, texts seen "
             "under both labels dropped; 80/20 split per source by salted sha1 of the text.\n")
    L.append("| source | label | train | held-out |\n|---|---|---:|---:|")
    for s in WEAK_SOURCES:
        L.append(f"| {s.name} | {'keep' if s.label else 'discard'} | {counts[s.name][0]} | {counts[s.name][1]} |")
    L.append("")
    L.append(f"## Held-out results ({len(held)} examples, {int(y_held.sum())} keep)\n")
    L.append("| model | precision | recall | F1 | ROC-AUC | avg precision | accuracy | train s (tokenise + fit) | scoring docs/s (held-out) |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t in TOKENIZERS:
        r = results[t]
        L.append(f"| fastText, {t} | {mean_range([x['precision'] for x in r])} | {mean_range([x['recall'] for x in r])} | "
                 f"{mean_range([x['f1'] for x in r])} | {mean_range([x['roc_auc'] for x in r])} | "
                 f"{mean_range([x['average_precision'] for x in r])} | {mean_range([x['accuracy'] for x in r])} | "
                 f"{statistics.median(x['train_s'] for x in r):.2f} ({statistics.median(x['tokenize_s'] for x in r):.2f} + "
                 f"{statistics.median(x['fit_s'] for x in r):.2f}) | {statistics.median(x['score_docs_per_s'] for x in r):,.0f} |")
    L.append(f"| majority class ({'keep' if majority else 'discard'}) | {maj['precision']:.4f} | {maj['recall']:.4f} | "
             f"{maj['f1']:.4f} | 0.5000 | {y_held.mean():.4f} | {maj['accuracy']:.4f} | – | – |")
    L.append(f"| length only (keep if ≥ {len_thr:.0f} chars, fitted on train) | {len_m['precision']:.4f} | {len_m['recall']:.4f} | "
             f"{len_m['f1']:.4f} | {len_auc:.4f} | {average_precision(lengths_held, y_held):.4f} | {len_m['accuracy']:.4f} | – | – |")
    L.append("")
    L.append("## Unseen keep source (trained without it; tested on its held-out part + held-out discard)\n")
    L.append("| tokenizer | " + " | ".join(f"{s}: F1 / AUC / recall" for s in keep_sources) + " |")
    L.append("|---|" + "---:|" * len(keep_sources))
    for t in TOKENIZERS:
        L.append(f"| {t} | " + " | ".join(f"{loso[t][s]['f1']:.4f} / {loso[t][s]['roc_auc']:.4f} / {loso[t][s]['recall']:.4f}" for s in keep_sources) + " |")
    L.append("")
    L.append(f"## Winner: **{winner}** ({why})\n")
    L.append(f"Held-out mean F1: " + ", ".join(f"{t} {mean_f1[t]:.4f}" for t in TOKENIZERS)
             + "; unseen-source mean F1: " + ", ".join(f"{t} {mean_loso[t]:.4f}" for t in TOKENIZERS) + ".\n")
    L.append(f"## Threshold for target precision {args.target_precision}\n")
    L.append(f"Chosen with `choose_threshold` on the even-indexed half of the held-out set ({int(half.sum())} examples), "
             f"checked on the odd half ({int((~half).sum())}), {winner} model, seed 0:\n")
    L.append("| half | threshold | precision | recall | kept fraction |\n|---|---:|---:|---:|---:|")
    L.append(f"| calibration | {thr:.4f} | {calib['precision']:.4f} | {calib['recall']:.4f} | {calib['kept_fraction']:.4f} |")
    L.append(f"| check | {thr:.4f} | {check['precision']:.4f} | {check['recall']:.4f} | {check['kept_fraction']:.4f} |")
    L.append("")
    L.append(f"PR curves: `benchmarks/out/quality_pr.png` (not committed; re-run the script).\n")
    if corpus_rows:
        L.append("## Scoring the pretraining corpus\n")
        c0 = corpus_rows[0]
        L.append(f"Every enabled source of `datasets/cumed-pretrain.yaml` read with the project readers: "
                 f"{c0['docs']:,} documents, {c0['chars'] / 1e6:.1f} M characters; one process, batches of 512.\n")
        L.append("| tokenizer | tokenise s | predict s | total docs/s | M chars/s |\n|---|---:|---:|---:|---:|")
        for r in corpus_rows:
            tot = r["tokenize_s"] + r["predict_s"]
            L.append(f"| {r['tok']} | {r['tokenize_s']:.2f} | {r['predict_s']:.2f} | {r['docs'] / tot:,.0f} | {r['chars'] / tot / 1e6:.2f} |")
        L.append("")
        w = next(r for r in corpus_rows if r["tok"] == winner)
        L.append(f"Share of each source the {winner} model keeps at threshold {thr:.3f} (illustration only: the "
                 f"model learned *doctor answer vs GPT answer*, not general quality, so out-of-domain text such as "
                 f"knowledge-graph cards or papers is scored by resemblance to doctor answers):\n")
        L.append("| source | docs | kept |\n|---|---:|---:|")
        for src, (n, k) in sorted(w["kept"].items()):
            L.append(f"| {src} | {n:,} | {k / n:.1%} |")
        L.append("")
    MD.write_text("\n".join(L) + "\n", encoding="utf-8")
    print("wrote", MD)

    if args.store:
        from annotation.quality.artifact import save_artifact

        r0 = results[winner][0]
        path = save_artifact(
            wm, args.store, threshold=thr, target_precision=args.target_precision,
            metrics={k: v for k, v in r0.items() if isinstance(v, (int, float))},
            lineage={"datasets": [], "label_batches": [], "weak_label_sources": source_lineage(raw),
                     "train_rows": len(train), "held_out_rows": len(held),
                     "split": "per source, salted sha1 of text, 20% held out (weak_labels.split)"},
        )
        print("published", path)


if __name__ == "__main__":
    main()
