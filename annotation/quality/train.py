"""Train and evaluate the fastText quality classifier (keep vs discard).

``train_classifier(examples, tokenizer="jieba"|"char", seed=0, **fasttext_params)`` returns a
``QualityModel`` whose ``score(texts)`` is P(keep) per text. Training is deterministic: one
thread (``thread=1``), a fixed ``seed`` for fastText, the training file written in a
seed-determined order, and fastText run in a fresh interpreter (in a process that has trained
before it gives other models); same examples + same seed -> same model bytes -> same scores,
however often a process trains.

``evaluate`` computes precision / recall / F1 (positive class = keep, at the model threshold),
ROC-AUC (Mann-Whitney, ties averaged), average precision, accuracy and the majority-class
baseline with numpy only. ``choose_threshold`` picks the lowest threshold whose kept set
reaches a target precision (so recall is as high as that precision allows);
``pr_curve_plot`` writes the precision-recall curve(s) as a PNG.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from pathlib import Path

import numpy as np

from curation.quality.model import LABEL_DISCARD, LABEL_KEEP, QualityModel
from curation.quality.tokenize import TOKENIZERS, tokenize

# Small defaults on purpose: the default bucket (2M) x dim (100) makes a 800 MB model.bin.
DEFAULT_PARAMS = {
    "lr": 0.5,
    "epoch": 10,
    "wordNgrams": 2,
    "dim": 32,
    "minCount": 1,
    "bucket": 200_000,
    "loss": "softmax",
}


def label_to_int(label) -> int:
    """``keep``/``discard``, ``1``/``0``, ``True``/``False`` (and ``__label__keep``) -> 1/0."""
    if isinstance(label, (bool, np.bool_)):
        return int(label)
    if isinstance(label, (int, np.integer)) and int(label) in (0, 1):
        return int(label)
    if isinstance(label, str):
        s = label.strip().lower().removeprefix("__label__")
        if s in ("keep", "1", "good", "accept"):
            return 1
        if s in ("discard", "0", "bad", "reject", "remove"):
            return 0
    raise ValueError(f"label {label!r}: use 'keep'/'discard' or 1/0")


def _pairs(examples) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    for ex in examples:
        if hasattr(ex, "text") and hasattr(ex, "label"):
            text, label = ex.text, ex.label
        else:
            text, label = ex
        texts.append(str(text))
        labels.append(label_to_int(label))
    return texts, np.asarray(labels, dtype=np.int8)


_TRAIN = (
    "import json, sys, fasttext\n"
    "fasttext.train_supervised(input=sys.argv[1], **json.loads(sys.argv[2])).save_model(sys.argv[3])\n"
)


def _train_in_fresh_process(train_file: Path, args: dict, model_file: Path):
    """fastText training in a new interpreter, then the saved model loaded here.

    The same file and seed with ``thread=1`` gave the same model in a fresh process every time,
    but a different one on every later training in the same process (and "Encountered NaN" once
    the process had freed memory full of random floats): this fastText build depends on the
    state of the process. A fresh interpreter costs ~0.3 s; saving and loading is exact.
    """
    import fasttext

    r = subprocess.run([sys.executable, "-c", _TRAIN, str(train_file), json.dumps(args), str(model_file)],
                       capture_output=True, text=True)
    if r.returncode:
        lines = (r.stderr or "").strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"fastText training failed (exit {r.returncode})")
    return fasttext.load_model(str(model_file))


def train_classifier(examples, tokenizer: str = "jieba", seed: int = 0, **params) -> QualityModel:
    """Train on ``examples``: ``(text, label)`` pairs or objects with ``.text``/``.label``.

    ``params`` override ``DEFAULT_PARAMS`` (any ``fasttext.train_supervised`` keyword);
    ``thread`` is forced to 1 for determinism unless given explicitly.
    """
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {tokenizer!r}; use one of {', '.join(TOKENIZERS)}")
    texts, labels = _pairs(examples)
    if len(set(labels.tolist())) < 2:
        raise ValueError(f"training needs both labels; got {len(texts)} examples, all {'keep' if labels.any() else 'discard'}")
    args = {**DEFAULT_PARAMS, "thread": 1, **params, "seed": int(seed), "verbose": 0}
    order = np.random.RandomState(seed).permutation(len(texts))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cumed-quality-") as tmp:
        path = Path(tmp) / "train.txt"
        with open(path, "w", encoding="utf-8") as f:
            for i in order:
                line = tokenize(texts[i], tokenizer)
                f.write(f"{LABEL_KEEP if labels[i] else LABEL_DISCARD} {line}\n")
        t1 = time.perf_counter()
        # fastText's SGD can diverge ("Encountered NaN"); halving the rate is the documented
        # remedy. The rate actually used is recorded in the model's params.
        for attempt in range(4):
            try:
                ft = _train_in_fresh_process(path, args, Path(tmp) / "model.bin")
                break
            except RuntimeError as e:
                if "NaN" not in str(e) or attempt == 3:
                    raise
                args["lr"] = args["lr"] / 2
    t2 = time.perf_counter()
    args.pop("verbose", None)
    model = QualityModel(ft, tokenizer, {**args, "tokenize_s": round(t1 - t0, 3), "fit_s": round(t2 - t1, 3)})
    return model


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
