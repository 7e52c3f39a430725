"""``ModelFilter``: the part every classifier step shares (quality, relevance).

A published fastText artifact is resolved in the driver (a wrong ref fails before any worker
starts), its ``meta.json`` gives the model version named in removal reasons and the threshold it
was chosen with; the filter is pickled to datatrove's workers holding only the artifact path, and
each worker loads the model on first use (checking its sha256). A subclass writes ``filter_batch``.
"""

from __future__ import annotations

from datatrove.data import Document

from curation.quality.artifact import load_artifact, read_meta, resolve_artifact
from curation.steps.base import CumedFilter


class ModelFilter(CumedFilter):
    kind: str | None = None  # the artifact kind this step accepts (None: any, the quality model's legacy meta)

    def __init__(self, artifact: str, threshold: float | None = None, *, store: str | None = None,
                 batch_size: int = 512, verify: bool = True, exclusion_writer=None):
        super().__init__(exclusion_writer=exclusion_writer, batch_size=batch_size)
        self.artifact = str(resolve_artifact(artifact, store))  # fail early, in the driver
        self.meta = read_meta(self.artifact)
        if self.kind is not None and self.meta.get("kind") != self.kind:
            raise ValueError(f"{self.artifact}: kind {self.meta.get('kind')!r} is not a {self.name} model ({self.kind})")
        self.model_ref = f"{self.meta.get('name', self.name)}@{self.meta.get('version', '?')}"
        self.threshold = float(self.meta.get("threshold", 0.5) if threshold is None else threshold)
        self.verify = verify
        self._model = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_model"] = None  # the fastText object is not picklable; workers reload it
        return state

    @property
    def model(self):
        if self._model is None:
            kw = {"kind": self.kind} if self.kind is not None else {}
            self._model, _ = load_artifact(self.artifact, verify=self.verify, **kw)
        return self._model

    def filter(self, doc: Document):
        return self.filter_batch([doc])[0]
