"""The quality classifier at inference: a fastText model plus the tokenizer it was trained with.

``QualityModel.score(texts)`` is P(keep) per text. The fastText training is
``curation.quality.train``; the quality workflow around it (labels, thresholds, publishing:
``annotation.quality``) belongs to the annotation wing; scoring a corpus with it is a curation
step (``curation.steps.quality``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

from curation.quality.tokenize import TOKENIZERS, tokenize

LABEL_KEEP, LABEL_DISCARD = "__label__keep", "__label__discard"


class QualityModel:
    """A trained fastText model plus the tokenizer it was trained with."""

    def __init__(self, ft_model, tokenizer: str, params: dict | None = None, threshold: float = 0.5):
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; use one of {', '.join(TOKENIZERS)}")
        self.ft = ft_model
        self.tokenizer = tokenizer
        self.params = dict(params or {})
        self.threshold = float(threshold)
        labels = list(ft_model.get_labels())
        if LABEL_KEEP not in labels:
            raise ValueError(f"fastText model has labels {labels}; a quality model needs {LABEL_KEEP}")

    def score_tokenized(self, lines: Sequence[str]) -> np.ndarray:
        """P(keep) for already tokenized lines (one fastText call for the whole batch)."""
        if not lines:
            return np.zeros(0, dtype=np.float64)
        labels, probs = self.ft.predict(list(lines), k=-1, threshold=0.0)
        out = np.empty(len(lines), dtype=np.float64)
        for i, (ls, ps) in enumerate(zip(labels, probs)):
            d = dict(zip(ls, ps))
            if LABEL_KEEP in d:
                s = d[LABEL_KEEP]
            elif LABEL_DISCARD in d:
                s = 1.0 - d[LABEL_DISCARD]
            else:  # empty input: no evidence either way
                s = 0.5
            out[i] = min(1.0, max(0.0, float(s)))
        return out

    def score(self, texts: Iterable[str]) -> np.ndarray:
        """P(keep) per text."""
        return self.score_tokenized([tokenize(t, self.tokenizer) for t in texts])

    def predict(self, texts: Iterable[str], threshold: float | None = None) -> np.ndarray:
        t = self.threshold if threshold is None else threshold
        return (self.score(texts) >= t).astype(np.int8)

    def save_model(self, path: str | os.PathLike) -> None:
        self.ft.save_model(str(path))

    @classmethod
    def load(cls, path: str | os.PathLike, tokenizer: str, params: dict | None = None, threshold: float = 0.5):
        import fasttext

        return cls(fasttext.load_model(str(path)), tokenizer, params, threshold)
