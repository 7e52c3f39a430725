"""Stage 3 of dedup: remove the documents that ``NearDupClusters`` decided are duplicates.

Loads the decisions (one row per removed document, so memory is proportional to the number of
duplicates, not to the corpus) and removes each listed document with the reason
``exact_duplicate: of <id>`` or ``near_duplicate: of <id> (jaccard 0.91)``, setting
``metadata["duplicate_of"]`` and ``metadata["similarity"]`` for the exclusion writer.
"""

from __future__ import annotations

from datatrove.data import Document

from curation.dedup.core import Decision
from curation.dedup.near import read_decisions
from curation.steps.base import CumedFilter


class DuplicateFilter(CumedFilter):
    name = "dedup"

    def __init__(self, decisions_folder: str | None = None, decisions: list[Decision] | None = None, exclusion_writer=None):
        super().__init__(exclusion_writer=exclusion_writer)
        if (decisions_folder is None) == (decisions is None):
            raise ValueError("DuplicateFilter needs exactly one of decisions_folder= (NearDupClusters output) or decisions=")
        self.decisions_folder = decisions_folder
        self._decisions = {d.id: d for d in decisions} if decisions is not None else None

    @property
    def decisions(self) -> dict[str, Decision]:
        if self._decisions is None:
            self._decisions = {d.id: d for d in read_decisions(self.decisions_folder)}
        return self._decisions

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        d = self.decisions.get(str(doc.id))
        if d is None:
            return True
        doc.metadata["duplicate_of"] = d.duplicate_of
        doc.metadata["similarity"] = d.similarity
        if d.kind == "exact":
            return False, f"exact_duplicate: of {d.duplicate_of}"
        return False, f"near_duplicate: of {d.duplicate_of} (jaccard {d.similarity:.2f})"
