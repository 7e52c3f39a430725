"""``RelevanceFilter``: remove papers that are not about human medicine (issue #18).

The medical-lexicon filter keeps every ChinaXiv paper: a feed-additive trial on sows or a
bearing-fault "diagnosis" paper is dense in medical-looking terms. This step scores the documents
of the named sources with the relevance classifier (``curation.relevance``: fastText learnt from
the hand labels in ``curation/relevance/labels``), keeps the score in
``doc.metadata["relevance_score"]`` (P(medical)) and removes a document below the threshold with
reason ``relevance: 0.08 < 0.79 (relevance@1)``: the model version and the score.

Only the sources in ``sources`` are scored (default: the ChinaXiv papers). The classifier learnt
what separates a medical paper from an animal-science or engineering one from the opening of
papers; a patient's question, a disease card or a knowledge-graph entry is another kind of text
it never saw, and those sources hold nothing but medicine by construction (a 102-document sample
of them was labelled 102/102 medical; BENCHMARKS.md gives the model's keep rate on it anyway).

Recipe (``steps.relevance``; the model is trained at build time from the labels, or reused from
the store by its training key: ``curation.relevance.model``)::

    relevance: {labels: curation/relevance/labels, sources: [chinaxiv_medical], threshold: null}
"""

from __future__ import annotations

from datatrove.data import Document

from curation.relevance.artifact import KIND
from curation.relevance.train import HEAD_CHARS, features
from curation.steps.model_filter import ModelFilter
from curation.steps.quality import score_reason

# The papers: the only source the classifier was trained on (see the module docstring).
DEFAULT_SOURCES = ("chinaxiv_medical",)


class RelevanceFilter(ModelFilter):
    """Args:
        artifact: the model's version folder (``_models/relevance/v<N>``) or ``relevance@N`` with ``store``.
        threshold: default None = the one recorded in the artifact (chosen by cross-validation on
            the training part to keep 99 % of the medical papers; ``curation.relevance.train``).
        sources: the recipe sources to score (default ``chinaxiv_medical``); others pass unscored.
    """

    name = "relevance"

    kind = KIND

    def __init__(self, artifact: str, threshold: float | None = None, *, sources=DEFAULT_SOURCES,
                 store: str | None = None, batch_size: int = 256, verify: bool = True, exclusion_writer=None):
        super().__init__(artifact, threshold, store=store, batch_size=batch_size, verify=verify,
                         exclusion_writer=exclusion_writer)
        self.head = int(self.meta.get("head_chars") or HEAD_CHARS)  # the features it was trained on
        self.sources = frozenset(sources or ())

    def _decide(self, doc: Document, score: float):
        doc.metadata["relevance_score"] = round(float(score), 6)
        if score >= self.threshold:
            return True
        return False, f"relevance: {score_reason(score, self.threshold)} ({self.model_ref})"

    def filter_batch(self, batch: list[Document]):
        todo = [i for i, d in enumerate(batch) if d.metadata.get("source") in self.sources]
        out: list = [True] * len(batch)
        if todo:
            texts = [features(batch[i].text, self.head) for i in todo]
            for i, s in zip(todo, self.model.score(texts)):
                out[i] = self._decide(batch[i], s)
        return out
