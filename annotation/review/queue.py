"""Review batches: local state, push (sample + queue) and pull (collect decisions), idempotent.

State lives beside the datasets, in ``<store>/_review/<dataset>/`` (not a valid dataset name,
so listings ignore it)::

    ledger.json                 doc_id -> batch id for every document ever queued
    <batch>/batch.json          what was sampled, how, from which version; push state
    <batch>/tasks.json          Label Studio import format (file backend)
    <batch>/config.xml          the labeling config
    <batch>/annotations.jsonl   validated decisions, one per annotation id (pull appends new ones)
    <batch>/problems.jsonl      annotations that were reported and skipped

A document already queued or reviewed is never queued again (stable ids are the key). A push
that failed half-way is resumed by the next push of the same dataset, and the backend skips
tasks it already has, so nothing is duplicated.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd

from cumed.atomic import write_json as _write_json
from cumed.errors import CumedError
from cumed.store import Store, parse_ref

from annotation.batches import BatchState
from annotation.review.backend import ReviewBackend
from annotation.review.config import LABEL_CONFIG, meta_line
from annotation.review.decisions import Decision, Problem, parse_tasks
from annotation.review.sampling import sample


class ReviewState(BatchState):
    folder, letter, what, push_command = "_review", "r", "review", "review push"
    results_file, result_type = "annotations.jsonl", Decision

    def decisions(self, batch_id: str) -> list[Decision]:
        return self.results(batch_id)


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
         threshold: float = 0.5) -> dict:
    """Sample ``n`` not-yet-queued documents of ``ref`` and queue them; resumes an unfinished push."""
    name, _ = parse_ref(ref)
    state = ReviewState(store, name)
    unfinished = [b for b in state.batches() if state.batch(b).get("state") != "pushed"]
    if unfinished:
        info = state.batch(unfinished[0])
        tasks = json.loads((state.root / info["batch"] / "pending.json").read_text(encoding="utf-8"))
        resumed = True
    else:
        resolved, frame = _candidates(store, ref)
        ledger = state.ledger()
        fresh = frame[~frame["id"].isin(ledger)]
        kwargs = {"threshold": threshold} if strategy == "uncertainty" else {}
        ids = sample(fresh, n, strategy=strategy, seed=seed, **kwargs)
        if not ids:
            # Everything is queued or reviewed already: a no-op, not an error, and no empty batch.
            return {"batch": None, "ref": resolved, "backend": None, "tasks": 0, "resumed": False, "pushed": 0,
                    "skipped": 0, "note": f"every document of {resolved} is already queued or reviewed"}
        batch_id = state.new_batch_id()
        (state.root / batch_id).mkdir(parents=True, exist_ok=True)
        chosen = fresh.set_index("id").loc[ids].reset_index()
        tasks = make_tasks(chosen, batch_id, resolved)
        _write_json(state.root / batch_id / "pending.json", tasks)
        info = {"batch": batch_id, "dataset": name, "ref": resolved, "strategy": strategy, "seed": seed, "n": n,
                "doc_ids": ids, "state": "created", "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        state.save_batch(info)
        # The ledger is written before the push: a crash mid-push must not let another batch take these docs.
        _write_json(state.root / "ledger.json", {**ledger, **{i: batch_id for i in ids}})
        resumed = False
    backend: ReviewBackend = backend_factory(state.root / info["batch"])
    result = backend.push(info["batch"], name, tasks, LABEL_CONFIG)
    info.update(state="pushed", backend=backend.name, push=result)
    state.save_batch(info)
    return {"batch": info["batch"], "ref": info["ref"], "backend": backend.name, "tasks": len(tasks),
            "resumed": resumed, **result}


def pull(store: Store, batch_id: str, backend: ReviewBackend, source: str | None = None) -> dict:
    """Collect validated decisions of a batch; annotations already pulled are not added twice."""
    state = ReviewState.for_batch(store, batch_id)
    info = state.batch(batch_id)
    wanted = set(info["doc_ids"])
    tasks = [t for t in backend.pull(batch_id, state.dataset, source)
             if (t.get("data") or {}).get("batch") == batch_id or (t.get("data") or {}).get("doc_id") in wanted]
    decisions, problems = parse_tasks(tasks)
    decisions = [d for d in decisions if d.doc_id in wanted]
    have = {str(d.annotation_id) for d in state.decisions(batch_id)}
    new = [d for d in decisions if str(d.annotation_id) not in have]
    with open(state.root / batch_id / "annotations.jsonl", "a", encoding="utf-8") as f:
        for d in new:
            f.write(json.dumps(d.to_dict(), ensure_ascii=False) + "\n")
    _write_json(state.root / batch_id / "problems.json", [p.to_dict() for p in problems])
    total = state.decisions(batch_id)
    return {"batch": batch_id, "tasks_seen": len(tasks), "new_decisions": len(new), "decisions": len(total),
            "reviewed_docs": len({d.doc_id for d in total}), "problems": [p.to_dict() for p in problems]}


__all__ = ["ReviewState", "push", "pull", "make_tasks", "Problem"]
