"""Review batches: local state, push (sample + queue) and pull (collect decisions), idempotent.

State lives beside the datasets, in ``<store>/_review/<dataset>/`` (not a valid dataset name,
so listings ignore it)::

    .lock                       flock: batch ids, the ledger and appends are taken under it
    ledger.json                 doc_id -> batch id for every document ever queued
    <batch>/batch.json          what was sampled, how, from which version; push state
    <batch>/pending.json        the batch's tasks, saved before the push (a resumed push sends them)
    <batch>/predictions.json    the model's suggestion per document (``push --predictions``), for apply
    <batch>/.push.lock          flock held by the process pushing the batch
    <batch>/tasks.json          Label Studio import format (file backend)
    <batch>/config.xml          the labeling config
    <batch>/annotations.jsonl   validated decisions, one per annotation id (pull appends new ones)
    <batch>/problems.json       annotations that were reported and skipped

A document already queued or reviewed is never queued again (stable ids are the key). A push
that failed half-way is resumed by the next push of the same dataset, and the backend skips
tasks it already has, so nothing is duplicated. Locking and crash-safety: ``annotation.batches``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd

from cumed.atomic import write_json as _write_json
from cumed.errors import CumedError
from cumed.store import Store, parse_ref

from annotation.batches import BatchState, with_notes
from annotation.review.backend import ReviewBackend
from annotation.review.config import LABEL_CONFIG, meta_line
from annotation.review.decisions import Decision, Problem, parse_tasks
from annotation.review.predictions import attach, load_predictions
from annotation.review.sampling import sample


PREDICTIONS_FILE = "predictions.json"


class ReviewState(BatchState):
    folder, letter, what, push_command, pull_command = "_review", "r", "review", "review push", "review pull"
    results_file, result_type, items_key = "annotations.jsonl", Decision, "doc_ids"

    def decisions(self, batch_id: str) -> list[Decision]:
        return self.results(batch_id)

    def predictions(self, batch_id: str) -> dict | None:
        """``{model_version, source, suggestions: {doc_id: {decision, score, ...}}}`` of a batch pushed
        with predictions, else None."""
        p = self.root / batch_id / PREDICTIONS_FILE
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CumedError(f"{p}: unreadable ({e}); restore it, or delete it to apply batch {batch_id} "
                             f"without model agreement") from None


def _candidates(store: Store, ref: str) -> tuple[str, pd.DataFrame]:
    dv = store.get(ref)
    if dv.kind != "documents":
        raise CumedError(f"review push needs a documents dataset; {dv.ref} is {dv.kind}")
    frame = dv.to_pandas(columns=["id", "text", "source", "category", "metadata"])
    frame["score"] = [json.loads(m or "{}").get("quality_score") for m in frame["metadata"]]
    return dv.ref, frame


def make_tasks(frame: pd.DataFrame, batch_id: str, ref: str) -> list[dict]:
    tasks = []
    for row in frame.itertuples(index=False):
        score = None if row.score is None or pd.isna(row.score) else float(row.score)
        tasks.append({"data": {
            "doc_id": row.id, "text": row.text, "source": row.source, "category": row.category,
            "score": score, "meta": meta_line(row.source, row.category, score), "batch": batch_id, "dataset_ref": ref,
        }})
    return tasks


def push(store: Store, ref: str, n: int, backend_factory, strategy: str = "stratified", seed: int = 0,
         threshold: float = 0.5, predictions: str | None = None) -> dict:
    """Sample ``n`` not-yet-queued documents of ``ref`` and queue them; resumes an unfinished push.

    ``predictions``: a labels version or a classifier (``annotation.review.predictions``) whose
    suggestion every task carries as a Label Studio prediction.

    The batch (its documents and tasks) is saved durably before anything reaches the backend, and
    the backend skips the tasks it already has, so a push killed at any point is finished by the next
    push of the dataset: same batch, only the missing tasks (see ``annotation.batches``).
    """
    name, _ = parse_ref(ref)
    state = ReviewState(store, name)
    resolved = None

    def plan(batch_id: str, ledger: dict) -> dict | None:
        nonlocal resolved
        resolved, frame = _candidates(store, ref)
        fresh = frame[~frame["id"].isin(ledger)]
        kwargs = {"threshold": threshold} if strategy == "uncertainty" else {}
        ids = sample(fresh, n, strategy=strategy, seed=seed, **kwargs)
        if not ids:
            return None
        chosen = fresh.set_index("id").loc[ids].reset_index()
        tasks = make_tasks(chosen, batch_id, resolved)
        extra = {}
        if predictions:
            version, source, suggestions = load_predictions(store, predictions, chosen)
            tasks = attach(tasks, version, suggestions)
            _write_json(state.root / batch_id / PREDICTIONS_FILE,
                        {"model_version": version, "source": source,
                         "suggestions": {d: s.to_dict() for d, s in sorted(suggestions.items())}}, durable=True)
            extra["predictions"] = {"model_version": version, **source, "tasks_with_prediction": len(suggestions),
                                    "tasks_without_prediction": len(ids) - len(suggestions)}
        _write_json(state.root / batch_id / "pending.json", tasks, durable=True)
        return {"batch": batch_id, "dataset": name, "ref": resolved, "strategy": strategy, "seed": seed, "n": n,
                "doc_ids": ids, "state": "created", **extra,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    with state.pushing(plan) as (info, resumed):
        if info is None:
            # Everything is queued or reviewed already: a no-op, not an error, and no empty batch.
            return {"batch": None, "ref": resolved, "backend": None, "tasks": 0, "resumed": False, "pushed": 0,
                    "skipped": 0, "note": f"every document of {resolved} is already queued or reviewed"}
        tasks = _pending_tasks(state, info)
        backend: ReviewBackend = backend_factory(state.root / info["batch"])
        result = backend.push(info["batch"], name, tasks, LABEL_CONFIG)
        info.update(state="pushed", backend=backend.name, push=result)
        state.save_batch(info)
    return {"batch": info["batch"], "ref": info["ref"], "backend": backend.name, "tasks": len(tasks),
            "resumed": resumed, **({"predictions": info["predictions"]} if info.get("predictions") else {}), **result}


def _pending_tasks(state: ReviewState, info: dict) -> list[dict]:
    p = state.root / info["batch"] / "pending.json"
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CumedError(f"{p}: cannot read the tasks of unfinished batch {info['batch']} ({e}); restore the "
                         f"file, or set \"state\": \"pushed\" in its batch.json to give up on resuming it") from None


def pull(store: Store, batch_id: str, backend: ReviewBackend, source: str | None = None) -> dict:
    """Collect validated decisions of a batch; annotations already pulled are not added twice."""
    state = ReviewState.for_batch(store, batch_id)
    info = state.batch(batch_id)
    wanted = set(info["doc_ids"])
    tasks = [t for t in backend.pull(batch_id, state.dataset, source)
             if (t.get("data") or {}).get("batch") == batch_id or (t.get("data") or {}).get("doc_id") in wanted]
    decisions, problems = parse_tasks(tasks)
    decisions = [d for d in decisions if d.doc_id in wanted]
    new, notes = state.add_results(batch_id, decisions, key=lambda d: str(d.annotation_id))
    _write_json(state.root / batch_id / "problems.json", [p.to_dict() for p in problems], durable=True)
    total = state.decisions(batch_id)
    res = {"batch": batch_id, "tasks_seen": len(tasks), "new_decisions": len(new), "decisions": len(total),
           "reviewed_docs": len({d.doc_id for d in total}), "problems": [p.to_dict() for p in problems]}
    return with_notes(res, notes)


__all__ = ["ReviewState", "push", "pull", "make_tasks", "Problem"]
