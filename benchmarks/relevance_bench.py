"""Relevance classifier vs the lexicon filter, on the held-out part of the hand labels (issue #18).

Labels: ``curation/relevance/labels`` (RULE.md), the fixed split of ``curation.relevance.labels``
(70/30 per label by the sha256 of the ChinaXiv id). Texts: the papers as the build makes them
(``curation.relevance.texts``: the recipe's reader, normalize and pii).

Measured on the held-out part, "not" = positive (a removal):
- the relevance filter as shipped (``curation.relevance.train.fit`` on the training part,
  threshold by 5-fold cross-validation on the training part);
- today's lexicon filter (``lexicon_density`` at its default 0.05, the recipe's setting) and the
  lexicon density with its threshold chosen the same way (99 % of medical training papers kept);
- the folder heuristic: remove every paper of ``urology/`` (where the animal-science papers sit);
- every variant tried (``--variants``): CV on the training part and held-out, same threshold rule.
Also the keep rate of the model on the other-sources sample (``other-sources.jsonl``), training
time, and a plot (score histogram per class + precision-recall for "not"):
``benchmarks/out/relevance.png``; the tables go to stdout and ``benchmarks/out/relevance.md``.

    .venv/bin/python benchmarks/relevance_bench.py [--raw ../shared/data/raw] [--variants]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RAW = Path(os.environ.get("CUMED_RAW", ROOT.parent / "shared" / "data" / "raw"))
OUT = ROOT / "benchmarks" / "out"

from curation.recipe import load_recipe  # noqa: E402
from curation.relevance import train  # noqa: E402
from curation.relevance.labels import load_others  # noqa: E402
from curation.relevance.model import labels_folder, training_data  # noqa: E402
from curation.relevance.texts import source_texts  # noqa: E402

LABELS = "curation/relevance/labels"
# (name, features head, not weight, tokenizer, fastText params): what was tried, in order.
VARIANTS = [
    ("whole paper, jieba, weight 1, 10 epochs", 10**9, 1, "jieba", {"epoch": 10}),
    ("first 1,000 chars, jieba, weight 1", 1000, 1, "jieba", {"epoch": 10}),
    ("first 1,000 chars, char, weight 1", 1000, 1, "char", {"epoch": 10}),
    ("first 1,000 chars, char, weight 5", 1000, 5, "char", {"epoch": 10}),
    ("first 1,000 chars, char, weight 5, 25 epochs (shipped)", 1000, 5, "char", {"epoch": 25}),
    ("first 800 chars, char, weight 5, 25 epochs", 800, 5, "char", {"epoch": 25}),
    ("first 1,500 chars, char, weight 5, 25 epochs", 1500, 5, "char", {"epoch": 25}),
    ("first 1,000 chars, char, weight 15, 25 epochs", 1000, 15, "char", {"epoch": 25}),
]


def removal_metrics(removed, medical) -> dict:
    """Precision / recall / F1 of "not" (removed = predicted not) and keep rate per class."""
    r, m = np.asarray(removed, dtype=bool), np.asarray(medical, dtype=bool)
    tp, fp, fn = int((r & ~m).sum()), int((r & m).sum()), int((~r & ~m).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": rec, "f1": 2 * p * rec / (p + rec) if p + rec else 0.0,
            "not_removed": tp, "not": int((~m).sum()), "medical_kept": int((~r & m).sum()), "medical": int(m.sum())}


def row(name: str, m: dict) -> str:
    return (f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
            f"{m['not_removed']}/{m['not']} ({m['not_removed'] / m['not']:.1%}) | "
            f"{m['medical_kept']}/{m['medical']} ({m['medical_kept'] / m['medical']:.1%}) |")


def variant(train_part, held, texts, head, weight, tok, params):
    """(CV rates, held-out metrics, seconds) of one variant, threshold by CV on the training part."""
    old = (train.HEAD_CHARS, train.TOKENIZER)
    train.HEAD_CHARS, train.TOKENIZER = head, tok
    try:
        t0 = time.perf_counter()
        model, info = train.fit(train_part, texts, weight=weight, params=params)
        s = model.score([train.features(texts[p.file]) for p in held])
        return info["cv"], removal_metrics(s < model.threshold, [p.medical for p in held]), time.perf_counter() - t0
    finally:
        train.HEAD_CHARS, train.TOKENIZER = old


def plot(scores, medical, density, threshold, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(medical, dtype=bool)
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    bins = np.linspace(0, 1, 41)
    ax[0].hist(scores[m], bins=bins, alpha=0.6, label=f"medical (n={m.sum()})")
    ax[0].hist(scores[~m], bins=bins, alpha=0.8, label=f"not (n={(~m).sum()})")
    ax[0].axvline(threshold, color="red", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    ax[0].set_yscale("log")
    ax[0].set_xlabel("P(medical)")
    ax[0].set_title("Relevance score, held-out papers")
    ax[0].legend(fontsize=8)
    for name, s in (("relevance (1 - P(medical))", 1 - scores), ("lexicon density (negated)", -density)):
        order = np.argsort(-s, kind="mergesort")
        y = ~m[order]
        tp = np.cumsum(y)
        prec, rec = tp / np.arange(1, len(y) + 1), tp / max(y.sum(), 1)
        ax[1].step(rec, prec, where="post", label=name)
    ax[1].set_xlabel("recall (not removed)")
    ax[1].set_ylabel("precision (removed that are not)")
    ax[1].set_title("Removing \"not\": precision-recall, held-out")
    ax[1].legend(fontsize=8)
    ax[1].grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", default=str(RAW))
    ap.add_argument("--variants", action="store_true", help="also run every variant in VARIANTS (~3 min)")
    args = ap.parse_args()
    recipe = load_recipe(ROOT / "datasets" / "cumed-pretrain.yaml", args.raw)
    t0 = time.perf_counter()
    train_part, held, texts = training_data(recipe, LABELS)
    read_s = time.perf_counter() - t0
    medical = np.array([p.medical for p in held])
    L = [f"Labels: {len(train_part) + len(held)} ChinaXiv papers; train {len(train_part)} "
         f"({sum(not p.medical for p in train_part)} not), held-out {len(held)} ({int((~medical).sum())} not). "
         f"Reading + cleaning the papers: {read_s:.1f} s.\n"]

    t0 = time.perf_counter()
    model, info = train.fit(train_part, texts)
    fit_s = time.perf_counter() - t0
    scores = model.score([train.features(texts[p.file]) for p in held])
    ours = removal_metrics(scores < model.threshold, medical)

    from curation.steps.filters.lexicon_density import LexiconDensityFilter

    lex = LexiconDensityFilter(raw_dir=args.raw)
    dens = {f: lex.density(t) for f, t in texts.items()}
    d_held = np.array([dens[p.file] for p in held])
    d_train = np.array([dens[p.file] for p in train_part])
    lex_default = removal_metrics(d_held < lex.min_density, medical)
    t_lex = train.keep_threshold(d_train, [p.medical for p in train_part])
    lex_tuned = removal_metrics(d_held < t_lex, medical)
    folder = removal_metrics([p.file.startswith("urology/") for p in held], medical)

    L.append("| filter (held-out) | precision (not) | recall (not) | F1 (not) | not removed | medical kept |")
    L.append("|---|---|---|---|---|---|")
    L.append(row(f"relevance classifier (threshold {model.threshold:.3f}, CV on train)", ours))
    L.append(row(f"lexicon_density, default {lex.min_density} (today's recipe)", lex_default))
    L.append(row(f"lexicon density, threshold {t_lex:.3f} (99 % of medical train kept)", lex_tuned))
    L.append(row("folder rule: remove `urology/`", folder))
    L.append(f"\nCV on the training part (threshold rule): medical kept {info['cv']['medical_kept']}/"
             f"{info['cv']['medical']}, not removed {info['cv']['not_removed']}/{info['cv']['not']}. "
             f"Training time: {fit_s:.1f} s (5 CV fits + final fit, 1 thread; of which final fit "
             f"{info['fit_s']:.1f} s).")
    missed = [p for p, s in zip(held, scores) if not p.medical and s >= model.threshold]
    lost = [p for p, s in zip(held, scores) if p.medical and s < model.threshold]
    L.append("Held-out errors: " + "; ".join(
        [f"kept `not` {p.file} ({p.reason}, {s:.2f})" for p in missed for s in [float(scores[held.index(p)])]]
        + [f"removed `medical` {p.file} ({p.reason}, {s:.2f})" for p in lost for s in [float(scores[held.index(p)])]]))

    others = load_others(labels_folder(LABELS))
    by_source: dict[str, list] = {}
    for d in others:
        by_source.setdefault(d.source, []).append(d)
    L.append("\n| other source (sample) | labelled medical | kept by the classifier |\n|---|---|---|")
    total = [0, 0]
    for src, docs in by_source.items():
        texts_src = source_texts(recipe, src)
        s = model.score([train.features(texts_src[d.id]["text"]) for d in docs])
        kept = int((s >= model.threshold).sum())
        total[0] += len(docs)
        total[1] += kept
        L.append(f"| {src} | {sum(d.medical for d in docs)}/{len(docs)} | {kept}/{len(docs)} |")
    L.append(f"| all | {sum(d.medical for d in others)}/{len(others)} | {total[1]}/{total[0]} ({total[1] / total[0]:.1%}) |")

    if args.variants:
        L.append("\n| variant | CV not removed | CV medical kept | held-out not removed | held-out medical kept | s |")
        L.append("|---|---|---|---|---|---|")
        for name, head, weight, tok, params in VARIANTS:
            cv, m, secs = variant(train_part, held, texts, head, weight, tok, params)
            L.append(f"| {name} | {cv['not_removed']}/{cv['not']} | {cv['medical_kept']}/{cv['medical']} | "
                     f"{m['not_removed']}/{m['not']} | {m['medical_kept']}/{m['medical']} | {secs:.0f} |")
            print(L[-1], flush=True)

    png = plot(scores, medical, d_held, model.threshold, OUT / "relevance.png")
    L.append(f"\nPlot: `{png.relative_to(ROOT)}`")
    text = "\n".join(L)
    print(text)
    (OUT / "relevance.md").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
