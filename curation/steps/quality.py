"""``QualityFilter``: the quality classifier as a datatrove filter step.

Scores every document with a published quality model (``curation.quality.artifact``; trained and
published by ``annotation.quality``), stores
the score in ``doc.metadata["quality_score"]`` and removes documents below the threshold with
reason ``quality: 0.12 < 0.40`` (``removed_by = "quality"``). The threshold defaults to the one
recorded in the artifact (chosen for a target precision on held-out labels); pass
``threshold=`` to override, or ``threshold=None`` with ``score_only=True`` to only annotate.

Artifact loading, pickling to workers and the lazy model are ``ModelFilter``'s
(``curation/steps/model_filter.py``). Documents are scored in batches of
``batch_size`` with one fastText call per batch.

Recipe (``steps.quality``)::

    quality: {artifact: quality@latest, threshold: 0.4}   # NAME@N in the store's models, or a version folder
"""

from __future__ import annotations

from datatrove.data import Document

from curation.quality.tokenize import tokenize
from curation.steps.model_filter import ModelFilter


def score_reason(score: float, threshold: float) -> str:
    """``0.12 < 0.40``; more digits when two would read "0.40 < 0.40" (0.396 < 0.40)."""
    a, b = f"{score:.2f}", f"{threshold:.2f}"
    if a == b:
        a, b = f"{score:.4f}", f"{threshold:.4f}"
    return f"{a} < {b}"


class QualityFilter(ModelFilter):
    name = "quality"

    def __init__(self, artifact: str, threshold: float | None = None, *, store: str | None = None,
                 score_only: bool = False, batch_size: int = 512, verify: bool = True, exclusion_writer=None):
        super().__init__(artifact, threshold, store=store, batch_size=batch_size, verify=verify,
                         exclusion_writer=exclusion_writer)
        self.score_only = score_only

    def _decide(self, doc: Document, score: float):
        doc.metadata["quality_score"] = round(float(score), 6)
        if self.score_only or score >= self.threshold:
            return True
        return False, f"quality: {score_reason(score, self.threshold)}"

    def filter_batch(self, batch: list[Document]):
        model = self.model
        scores = model.score_tokenized([tokenize(d.text, model.tokenizer) for d in batch])
        return [self._decide(d, s) for d, s in zip(batch, scores)]
