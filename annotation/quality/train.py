"""Train and evaluate the fastText quality classifier (keep vs discard).

``train_classifier(examples, tokenizer="jieba"|"char", seed=0, **fasttext_params)`` returns a
``QualityModel`` whose ``score(texts)`` is P(keep) per text; it is deterministic (same examples
+ same seed -> same model bytes) and lives in ``curation.quality.train`` (the build trains the
relevance classifier with it), re-exported here.

``evaluate`` computes precision / recall / F1 (positive class = keep, at the model threshold),
ROC-AUC (Mann-Whitney, ties averaged), average precision, accuracy and the majority-class
baseline with numpy only. ``choose_threshold`` picks the lowest threshold whose kept set
reaches a target precision (so recall is as high as that precision allows);
``pr_curve_plot`` writes the precision-recall curve(s) as a PNG.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from curation.quality.model import QualityModel
# The fastText training itself lives in curation (the build trains the relevance classifier with
# it); re-exported here, where the quality workflow, the CLI and the tests import it from.
from curation.quality.train import DEFAULT_PARAMS, _pairs, _train_in_fresh_process, label_to_int, train_classifier  # noqa: F401

# --------------------------------------------------------------------------- metrics (numpy)


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve = P(score of a random keep > score of a random discard)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def precision_recall_curve(scores, labels):
    """(precision, recall, thresholds) for "keep if score >= t" at every distinct score, t descending."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct score
    tp, fp, thr = tp[last], fp[last], s[last]
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / max(int(y.sum()), 1)
    return precision, recall, thr


def average_precision(scores, labels) -> float:
    p, r, _ = precision_recall_curve(scores, labels)
    return float(np.sum(np.diff(np.r_[0.0, r]) * p))


def binary_metrics(scores, labels, threshold: float) -> dict:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    pred = s >= threshold
    tp = int((pred & y).sum())
    fp = int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    tn = int((~pred & ~y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": (tp + tn) / max(len(y), 1),
            "tp": tp, "fp": fp, "fn": fn, "tn": tn, "kept_fraction": float(pred.mean()) if len(y) else 0.0}


def evaluate(model: QualityModel, held_out, threshold: float | None = None, train_labels=None) -> dict:
    """Metrics of ``model`` on held-out ``(text, label)`` examples (positive class = keep).

    ``majority_baseline_accuracy`` is the accuracy of always answering the majority class of
    ``train_labels`` (the honest baseline) or, if not given, of the held-out set itself (the
    best any constant answer can do there).
    """
    texts, y = _pairs(held_out)
    t0 = time.perf_counter()
    scores = model.score(texts)
    score_s = time.perf_counter() - t0
    t = model.threshold if threshold is None else float(threshold)
    out = binary_metrics(scores, y, t)
    ref = y if train_labels is None else np.asarray([label_to_int(v) for v in train_labels])
    majority = int(ref.mean() >= 0.5)
    base = binary_metrics(np.full(len(y), float(majority)), y, 0.5)
    out.update({
        "n": int(len(y)),
        "positives": int(y.sum()),
        "threshold": t,
        "roc_auc": roc_auc(scores, y),
        "average_precision": average_precision(scores, y),
        "majority_class": "keep" if majority else "discard",
        "majority_baseline_accuracy": base["accuracy"],
        "majority_baseline_f1": base["f1"],
        "score_docs_per_s": len(y) / score_s if score_s > 0 else float("inf"),
    })
    return out


def choose_threshold(scores, labels, target_precision: float) -> float:
    """The lowest threshold t such that the documents with score >= t reach ``target_precision``.

    Lowest = keeps the most documents (highest recall) at that precision. Raises ``ValueError``
    naming the best precision available when no threshold reaches the target.
    """
    if not 0.0 < target_precision <= 1.0:
        raise ValueError(f"target_precision={target_precision}: use a value in (0, 1]")
    p, r, thr = precision_recall_curve(scores, labels)
    if not len(thr):
        raise ValueError("no scored examples to choose a threshold from")
    ok = np.nonzero(p >= target_precision)[0]
    if not len(ok):
        raise ValueError(
            f"no threshold reaches precision {target_precision:.3f} on {len(scores)} examples "
            f"(best: {p.max():.3f}); lower the target or label more data"
        )
    return float(thr[ok[-1]])


def pr_curve_plot(curves: dict, path: str | os.PathLike, title: str = "Quality classifier: precision-recall (keep)",
                  target_precision: float | None = None, points: dict | None = None) -> Path:
    """Write a PR-curve PNG. ``curves``: ``{name: (scores, labels)}``; ``points``: ``{name: (recall, precision)}``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    lo = 0.5
    for i, ax in enumerate(axes):
        zoom = i == 1
        base = None
        for name, (scores, labels) in curves.items():
            p, r, _ = precision_recall_curve(scores, labels)
            ap = average_precision(scores, labels)
            ax.step(np.r_[0.0, r], np.r_[p[0] if len(p) else 1.0, p], where="post", label=f"{name} (AP {ap:.4f})")
            base = float(np.mean(np.asarray(labels).astype(bool)))
            if len(p):
                lo = min(lo, float(p[r >= 0.9].min()) if (r >= 0.9).any() else lo)
        if base is not None and not zoom:
            ax.axhline(base, color="grey", ls=":", lw=1, label=f"positive rate {base:.2f}")
        if target_precision is not None:
            ax.axhline(target_precision, color="red", ls="--", lw=1, label=f"target precision {target_precision:.2f}")
        for name, (rx, py) in (points or {}).items():
            ax.plot([rx], [py], "o", label=name)
        ax.set_xlabel("recall (keep)")
        ax.set_ylabel("precision (keep)")
        if zoom:
            ax.set_xlim(0.9, 1.002)
            ax.set_ylim(max(0.0, min(lo, target_precision or 1.0) - 0.01), 1.002)
            ax.set_title("zoom: recall ≥ 0.9")
        else:
            ax.set_xlim(0, 1.01)
            ax.set_ylim(0, 1.01)
            ax.set_title(title)
            ax.legend(loc="lower left", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
