"""The review-queue backend interface: where tasks go and where annotations come from.

Both backends speak Label Studio's own formats, so a batch can move between them:

- ``push`` takes tasks in Label Studio's import format, ``{"data": {...}}`` with
  ``data.doc_id`` as the stable key, plus the labeling config (XML);
- ``pull`` returns tasks in Label Studio's JSON export format: each task dict carries
  ``data`` and ``annotations`` (``[{"id", "completed_by", "result": [...], "was_cancelled", ...}]``).

Parsing annotation results into decisions is backend-independent (``annotation.review.decisions``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class ReviewBackend(ABC):
    name = "backend"

    @abstractmethod
    def push(self, batch_id: str, dataset: str, tasks: list[dict], label_config: str) -> dict:
        """Queue tasks; idempotent by ``data.doc_id``. Returns at least ``{"pushed": n, "skipped": n}``.

        A push that died midway is resumed by sending the same tasks again (``annotation.batches``),
        so a task the backend already holds must be skipped, never queued twice."""

    @abstractmethod
    def pull(self, batch_id: str, dataset: str, source: str | None = None) -> list[dict]:
        """Tasks with their annotations, in Label Studio's JSON export format."""
