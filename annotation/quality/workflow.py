"""One call from labels to a published model: split, train, evaluate, choose the threshold, save.

    from annotation.quality.workflow import train_and_publish
    path, report = train_and_publish(store, examples, lineage=..., target_precision=0.95)

The threshold is the lowest one whose kept held-out documents reach ``target_precision``
(``choose_threshold``); the artifact records the held-out metrics at 0.5 and at that threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annotation.quality.artifact import save_artifact
from annotation.quality.train import binary_metrics, choose_threshold, evaluate, pr_curve_plot, train_classifier
from annotation.quality.weak_labels import split


def train_and_publish(store, examples, *, lineage: dict | None = None, tokenizer: str = "jieba", seed: int = 0,
                      target_precision: float = 0.95, held_out: float = 0.2, name: str = "quality",
                      plot: str | Path | None = None, **params) -> tuple[Path, dict]:
    train, held = split(examples, held_out=held_out)
    model = train_classifier(train, tokenizer=tokenizer, seed=seed, **params)
    metrics = evaluate(model, held, train_labels=[e.label for e in train])
    y = np.array([e.label for e in held])
    scores = model.score([e.text for e in held])
    thr = choose_threshold(scores, y, target_precision)
    at = binary_metrics(scores, y, thr)
    metrics["at_threshold"] = {k: at[k] for k in ("precision", "recall", "f1", "accuracy", "kept_fraction")}
    model.threshold = thr
    if plot:
        pr_curve_plot({tokenizer: (scores, y)}, plot, target_precision=target_precision,
                      points={f"t={thr:.3f}": (at["recall"], at["precision"])})
    sources = sorted({e.source for e in examples})
    lin = {"train_rows": len(train), "held_out_rows": len(held), "example_sources": sources,
           "split": f"per source, salted sha1 of text, {held_out:.0%} held out (weak_labels.split)", **(lineage or {})}
    path = save_artifact(model, store, name, metrics=metrics, threshold=thr, target_precision=target_precision, lineage=lin)
    return path, metrics
