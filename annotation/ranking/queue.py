"""Ranking batches: local state, push (sample prompts, build tasks) and pull (-> ``rankings``).

State lives in ``<store>/_ranking/<dataset>/`` (not a valid dataset name, so listings ignore it)::

    .lock                      flock: batch ids, the ledger and appends are taken under it
    ledger.json                prompt_id -> batch id for every prompt ever queued
    <batch>/batch.json         source ref, k, seed, ties, and per prompt the response_id -> model
                               mapping and the shuffled display order (never sent to annotators);
                               from generated answers also responses_ref, id_salt, selection and
                               per response source_id (the responses row's id, or ``doctor``);
                               saved before the push, it rebuilds the tasks when a push is resumed
    <batch>/.push.lock         flock held by the process pushing the batch
    <batch>/tasks.json         Label Studio import format (file backend)
    <batch>/config.xml         the labeling config
    <batch>/rankings.jsonl     validated rankings, one per annotation id (pull appends new ones)
    <batch>/problems.json      annotations that were reported and skipped

Candidates come from a ``rankings`` dataset (its responses: imported rankings, model answers) or
a ``conversations`` dataset (single-turn: the assistant turn is the reference answer, model
``reference``), plus answers imported from JSONL files per model (``{"prompt_id"|"id", "response"}``).
When a prompt has more than ``k`` candidates, the reference/doctor answer is kept and the rest
are sampled with the batch seed. With ``responses_ref`` (a ``responses`` version) the candidates
are a conversation's doctor answer plus K-1 generated ones (``annotation.ranking.generated``);
their ids and display order are then hashed from the seed and a random salt kept in
``batch.json``, so nobody who knows the (default) seed can work out which id is the doctor's.
"""

from __future__ import annotations

import json
import random
import secrets
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from cumed.atomic import write_json as _write_json
from cumed.errors import CumedError
from cumed.store import Store, parse_ref

from annotation.batches import BatchState, with_notes
from annotation.ranking.config import label_config
from annotation.ranking.generated import generated_pool
from annotation.ranking.importers import RANKINGS_SCHEMA
from annotation.ranking.tasks import MAX_K, MIN_K, Candidate, make_task
from annotation.ranking.validate import Ranking, agreement, latest_per_annotator, parse_tasks

PREFERRED = ("doctor", "reference")
DEFAULT_RANKINGS = "cumed-rm-rankings"


class RankState(BatchState):
    folder, letter, what, push_command, pull_command = "_ranking", "k", "ranking", "rank push", "rank pull"
    results_file, result_type, items_key = "rankings.jsonl", Ranking, "prompts"

    def rankings(self, batch_id: str) -> list[Ranking]:
        return self.results(batch_id)


def read_model_answers(paths: dict[str, str | Path]) -> dict[str, dict[str, str]]:
    """{model: JSONL path} -> {prompt_id: {model: text}}; lines ``{"prompt_id"|"id", "response"|"text"}``."""
    out: dict[str, dict[str, str]] = {}
    for model, path in paths.items():
        p = Path(path)
        if not p.is_file():
            raise CumedError(f"answers file {p} for model {model!r} not found")
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise CumedError(f"{p} line {n}: not JSON ({e.msg}); one object per line") from e
            pid = rec.get("prompt_id") or rec.get("id")
            text = rec.get("response") or rec.get("text")
            if not pid or not text:
                raise CumedError(f"{p} line {n}: needs prompt_id (or id) and response (or text)")
            out.setdefault(str(pid), {})[model] = text
    return out


def _candidates(store: Store, ref: str, answers: dict[str, dict[str, str]]) -> tuple[str, dict[str, tuple[str, dict]]]:
    dv = store.get(ref)
    pool: dict[str, tuple[str, dict[str, str]]] = {}
    if dv.kind == "rankings":
        for row in dv.to_arrow(columns=["prompt_id", "prompt", "responses"]).to_pylist():
            if row["prompt_id"] not in pool:
                pool[row["prompt_id"]] = (row["prompt"], {r["model"]: r["text"] for r in row["responses"]})
    elif dv.kind == "conversations":
        for row in dv.to_arrow(columns=["id", "messages"]).to_pylist():
            msgs = [m for m in row["messages"] if m["role"] != "system"]
            if len(msgs) == 2 and msgs[0]["role"] == "user" and msgs[1]["role"] == "assistant":
                pool[row["id"]] = (msgs[0]["content"], {"reference": msgs[1]["content"]})
    else:
        raise CumedError(f"rank push needs a rankings or conversations dataset; {dv.ref} is {dv.kind}")
    for pid, by_model in answers.items():
        if pid in pool:
            pool[pid][1].update(by_model)
    return dv.ref, pool


def _id_seed(info: dict):
    """What response ids and display order are hashed from: the seed, salted where the batch has a salt."""
    return f"{info['seed']}\x1f{info['id_salt']}" if info.get("id_salt") else info["seed"]


def push(store: Store, ref: str, n: int, backend_factory, k: int = 4, seed: int = 0, ties: bool = False,
         ratings: bool = True, answers: dict[str, str | Path] | None = None, responses_ref: str | None = None) -> dict:
    """Queue ``n`` not-yet-queued prompts of ``ref`` with ``k`` responses each; resumes an unfinished push.

    With ``responses_ref``, ``ref`` is a conversations version and each task is its doctor's answer
    plus K-1 rows of that responses version; prompts that cannot make a task are counted by reason
    in the result's ``selection`` (also kept in ``batch.json``).

    As for review (``annotation.review.queue.push``): the batch is saved durably before anything
    reaches the backend, so a push that dies midway is finished by the next ``rank push`` of the
    dataset - the same batch, its tasks rebuilt from ``batch.json``, only the missing ones imported -
    instead of sampling other prompts and leaving the rest of the batch behind.
    """
    if not MIN_K <= k <= MAX_K:
        raise CumedError(f"--k {k}: a ranking task shows {MIN_K}..{MAX_K} responses")
    if responses_ref and answers:
        raise CumedError("--responses: give either a responses version (NAME@N) or MODEL=FILE.jsonl answers, not both")
    name, _ = parse_ref(ref)
    state = RankState(store, name)

    def plan_generated(batch_id: str, ledger: dict) -> dict:
        resolved, resp_ref, pool, selection = generated_pool(store, ref, responses_ref, k, seed, ledger)
        eligible = sorted(pool)
        if not eligible:
            raise CumedError(f"no prompt of {resolved} can make a task of the doctor's answer and {k - 1} responses "
                             f"of {resp_ref}: {selection['already_queued']} already queued, skipped "
                             + ", ".join(f"{r} {c}" for r, c in selection["skipped"].items())
                             + "; lower --k or generate more samples")
        chosen = sorted(random.Random(f"{seed}\x1fsample").sample(eligible, min(n, len(eligible))))
        info = {"batch": batch_id, "dataset": name, "ref": resolved, "responses_ref": resp_ref, "k": k, "seed": seed,
                "id_salt": secrets.token_hex(8), "ties": ties, "ratings": ratings, "n": len(chosen)}
        local = {}
        for pid in chosen:
            prompt, cands = pool[pid]
            _, local[pid] = make_task(pid, prompt, cands, _id_seed(info), batch_id, resolved)
        selection["queued"] = len(chosen)
        selection["not_sampled"] = len(eligible) - len(chosen)  # left for a later push
        return {**info, "prompts": local, "selection": selection, "state": "created",
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    def plan(batch_id: str, ledger: dict) -> dict:
        if responses_ref:
            return plan_generated(batch_id, ledger)
        resolved, pool = _candidates(store, ref, read_model_answers(answers or {}))
        eligible = sorted(pid for pid, (_, c) in pool.items() if pid not in ledger and len(c) >= k)
        if not eligible:
            raise CumedError(f"no prompt of {resolved} has {k} responses and is not yet queued "
                             f"({len(pool)} prompts, {len(ledger)} already queued); lower --k or add --responses")
        chosen = sorted(random.Random(f"{seed}\x1fsample").sample(eligible, min(n, len(eligible))))
        local = {}
        for pid in chosen:
            prompt, cands = pool[pid]
            keep = [m for m in PREFERRED if m in cands][:1]
            rest = sorted(m for m in cands if m not in keep)
            models = keep + sorted(random.Random(f"{seed}\x1f{pid}").sample(rest, k - len(keep)))
            _, local[pid] = make_task(pid, prompt, [Candidate(m, cands[m]) for m in models], seed, batch_id, resolved)
        return {"batch": batch_id, "dataset": name, "ref": resolved, "k": k, "seed": seed, "ties": ties,
                "ratings": ratings, "n": len(chosen), "prompts": local, "state": "created",
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    with state.pushing(plan) as (info, resumed):
        batch_id = info["batch"]
        tasks = batch_tasks(info)
        backend = backend_factory(state.root / batch_id)
        result = backend.push(batch_id, name, tasks, label_config(info["k"], ties=info["ties"],
                                                                  ratings=info.get("ratings", True)))
        info.update(state="pushed", backend=backend.name, push=result)
        state.save_batch(info)
    extra = {"responses_ref": info["responses_ref"], "selection": info["selection"]} if info.get("responses_ref") else {}
    return {"batch": batch_id, "ref": info["ref"], "backend": backend.name, "tasks": len(tasks), "k": info["k"],
            "resumed": resumed, **extra, **result}


def batch_tasks(info: dict) -> list[dict]:
    """The batch's Label Studio tasks, rebuilt from ``batch.json``: each prompt's record keeps its
    responses in candidate order, and response ids and display order are seeded by (seed, prompt),
    so the tasks are the ones the first push built."""
    tasks = []
    for pid, rec in info["prompts"].items():
        cands = [Candidate(r["model"], r["text"], key=r.get("source_id", "")) for r in rec["responses"]]
        task, again = make_task(pid, rec["prompt"], cands, _id_seed(info), info["batch"], info["ref"])
        if again["order"] != rec["order"]:  # the task builder changed since: never send other ids
            raise CumedError(f"batch {info['batch']}: prompt {pid} no longer rebuilds to its recorded "
                             f"response order; finish the push with the cumed version that made the batch")
        tasks.append(task)
    return tasks


def _export_count_check(tasks: list[dict]) -> dict:
    """Label Studio's per-task ``total_annotations`` vs the annotations the export carries."""
    declared = present = 0
    mismatched = []
    for t in tasks:
        anns = [a for a in t.get("annotations") or [] if not a.get("was_cancelled")]
        present += len(anns)
        if "total_annotations" in t:
            declared += int(t["total_annotations"] or 0)
            if int(t["total_annotations"] or 0) != len(anns):
                mismatched.append({"task_id": t.get("id"), "declared": t["total_annotations"], "exported": len(anns)})
        else:
            declared += len(anns)
    return {"declared": declared, "exported": present, "mismatched_tasks": mismatched}


def rows_for(info: dict, rankings: list[Ranking]) -> list[dict]:
    """One ``rankings`` row per (prompt, annotator), the latest annotation winning."""
    rows = []
    for r in sorted(latest_per_annotator(rankings), key=lambda r: (r.prompt_id, r.annotator)):
        rec = info["prompts"][r.prompt_id]
        responses = [{"response_id": x["response_id"], "text": x["text"], "model": x["model"]} for x in rec["responses"]]
        rows.append({"prompt_id": r.prompt_id, "prompt": rec["prompt"], "responses": responses,
                     "ranking": r.ranking, "annotator": r.annotator, "batch": info["batch"],
                     "scores": json.dumps({"ratings": r.ratings}, ensure_ascii=False) if r.ratings else "",
                     "method": "annotation", "seed": rec["seed"], "order": rec["order"],
                     "source": info["ref"], "department": ""})
    return rows


def pull(store: Store, batch_id: str, backend, source: str | None = None, publish: str | None = DEFAULT_RANKINGS,
         conflict_tau: float = 0.0) -> dict:
    """Validate a batch's annotations, report agreement, publish the ``rankings`` dataset.

    The published version holds every row of the previous version of ``publish`` from other
    batches plus this batch's rankings (one row per prompt and annotator).
    """
    state = RankState.for_batch(store, batch_id)
    info = state.batch(batch_id)
    expected = {pid: {r["response_id"] for r in rec["responses"]} for pid, rec in info["prompts"].items()}
    tasks = [t for t in backend.pull(batch_id, state.dataset, source)
             if isinstance(t, dict) and ((t.get("data") or {}).get("batch") == batch_id
                                         or (t.get("data") or {}).get("prompt_id") in expected)]
    valid, problems, submitted = parse_tasks(tasks, expected, ties_allowed=bool(info.get("ties")))
    new, notes = state.add_results(batch_id, valid, key=lambda r: str(r.annotation_id))
    _write_json(state.root / batch_id / "problems.json", [p.to_dict() for p in problems], durable=True)
    total = state.rankings(batch_id)
    counts = _export_count_check(tasks)
    counts["submitted"] = submitted
    counts["valid"] = len(valid)
    counts["invalid"] = sum(p.annotation_id is not None or p.task_id is not None for p in problems)
    counts["accounted"] = counts["valid"] + len(problems) == submitted
    rows = rows_for(info, total)
    superseded = len(total) - len(rows)  # the same annotator ranking a prompt again: latest wins
    counts["rows"] = len(rows)
    counts["superseded"] = superseded
    counts["mismatch"] = bool(counts["mismatched_tasks"]) or not counts["accounted"] or counts["declared"] != counts["exported"]
    agree = agreement(total, conflict_tau)
    res = {"batch": batch_id, "tasks_seen": len(tasks), "new_rankings": len(new), "rankings": len(total),
           "ranked_prompts": len({r.prompt_id for r in total}), "problems": [p.to_dict() for p in problems],
           "counts": counts, "agreement": agree}
    if publish and rows:
        table = pa.Table.from_pylist(rows, schema=RANKINGS_SCHEMA)
        parents = [info["ref"]] + ([info["responses_ref"]] if info.get("responses_ref") else [])
        if publish in store.names():
            prev = store.get(publish)
            old = prev.to_arrow()
            import pyarrow.compute as pc

            old = old.filter(pc.invert(pc.equal(old.column("batch"), batch_id))).select(RANKINGS_SCHEMA.names)
            table = pa.concat_tables([old.cast(RANKINGS_SCHEMA), table])
            parents.append(prev.ref)
        batches = sorted(set(table.column("batch").to_pylist()))
        dv = store.publish(publish, table, kind="rankings",
                           stats={"rankings": table.num_rows, "batches": batches,
                                  "agreement": {batch_id: {k: v for k, v in agree.items() if k != "conflicts"}},
                                  "conflicts": {batch_id: [c["prompt_id"] for c in agree["conflicts"]]}},
                           lineage={"parents": parents, "annotations": [
                               {"batch": batch_id, "annotation_ids": sorted({str(r.annotation_id) for r in total}),
                                "annotators": sorted({r.annotator for r in total})}]})
        res["ref"] = dv.ref
    return with_notes(res, notes)
