"""Ranking candidates from generated answers: the doctor's answer plus K-1 rows of a ``responses`` version.

The paper ranks four answers per prompt: the doctor's and three models'. A ``conversations``
version carries one answer per dialogue, so the other K-1 come from a ``responses`` version
(``cumed generate``), read against the contract: a row's ``prompt_id`` is the conversation's
``id`` and its ``prompt`` is the conversation's messages before the last assistant turn, which
is the doctor's answer. The responses version is untrusted input: a row whose prompt_id is not in
the conversations version, or whose prompt is not that history, is refused naming the prompt id
and the field, since ranking it against the doctor would compare answers to different questions.

Which K-1 (deterministic for a seed): usable rows only (non-empty text, not the doctor's text or
another row's text again); models in an order seeded by (seed, prompt, model), one sample of each
model per round (samples too in a seeded order), rounds until K-1 are taken. So distinct models
come first and a second sample of a model only when there are fewer than K-1 models.

Every prompt of the conversations version is accounted for: eligible, already queued, or skipped
with a reason (``no_doctor_answer``, ``no_responses``, ``too_few_responses``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from cumed.errors import CumedError
from cumed.store import Store

from annotation.ranking.tasks import Candidate

DOCTOR = "doctor"  # the model name the conversation's own answer gets in the batch and the rankings
SKIP_REASONS = ("no_doctor_answer", "no_responses", "too_few_responses")
RULE = ("doctor's answer + K-1 generated: distinct models first (model order seeded by seed and prompt), "
        "then further samples; empty and repeated texts left out")


def split_dialogue(messages: list[dict]) -> tuple[list[dict], str] | None:
    """(history before the last assistant turn, that turn's text), or None without an assistant turn."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == "assistant":
            return [{"role": m["role"], "content": m["content"]} for m in messages[:i]], messages[i]["content"] or ""
    return None


def prompt_text(history: list[dict]) -> str:
    """What the ranker reads as the question: the user's message for a single turn (as today's
    conversations path), else the dialogue so far with role labels. System prompts are left out."""
    turns = [m for m in history if m["role"] != "system"]
    if len(turns) == 1 and turns[0]["role"] == "user":
        return turns[0]["content"]
    label = {"user": "【用户 User】", "assistant": "【助手 Assistant】"}
    return "\n\n".join(f"{label.get(m['role'], m['role'])}\n{m['content']}" for m in turns)


def _order(seed, pid: str, key: str) -> str:
    return hashlib.sha256(f"{seed}\x1fpick\x1f{pid}\x1f{key}".encode()).hexdigest()


def pick(seed, pid: str, rows: list[dict], n: int) -> list[dict]:
    """``n`` rows of one prompt: one per model per round, models and samples in a seeded order."""
    by_model: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_model[r["model"]].append(r)
    models = sorted(by_model, key=lambda m: (_order(seed, pid, m), m))
    queues = {m: sorted(by_model[m], key=lambda r: (_order(seed, pid, r["response_id"]), r["response_id"])) for m in models}
    out: list[dict] = []
    while len(out) < n and any(queues.values()):
        for m in models:
            if queues[m] and len(out) < n:
                out.append(queues[m].pop(0))
    return out


def _norm(text: str) -> str:
    return " ".join(text.split())


def _read_responses(store: Store, responses_ref: str, conv_ref: str, dialogues: dict) -> tuple[str, dict, dict]:
    """(resolved ref, {prompt_id: [rows]}, counts) with every row checked against the conversations."""
    dv = store.get(responses_ref)
    if dv.kind != "responses":
        raise CumedError(f"--responses {responses_ref}: {dv.ref} is a {dv.kind} dataset; give a responses version "
                         f"(cumed generate {conv_ref} publishes one)")
    rows = dv.to_arrow(columns=["response_id", "prompt_id", "prompt", "model", "sample", "response"]).to_pylist()
    seen: set[str] = set()
    by_prompt: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        rid, pid = r["response_id"] or "", r["prompt_id"] or ""
        where = f"{dv.ref}, response_id {rid!r}, prompt_id {pid!r}"
        if not rid:
            raise CumedError(f"{dv.ref}, prompt_id {pid!r}: field response_id is empty; every response needs its own id")
        if rid in seen:
            raise CumedError(f"{where}: field response_id repeats; response ids must be unique in a responses version")
        seen.add(rid)
        if pid not in dialogues:
            raise CumedError(f"{where}: field prompt_id does not occur in {conv_ref}; rank the conversations "
                             f"version these responses were generated from")
        if not r["model"]:
            raise CumedError(f"{where}: field model is empty; every response names the model that wrote it")
        if r["model"] == DOCTOR:
            raise CumedError(f"{where}: field model is {DOCTOR!r}, the name kept for the conversation's own "
                             f"answer; publish the generated responses under the model's name")
        split = dialogues[pid]
        history = split[0] if split else None
        got = [{"role": m["role"], "content": m["content"]} for m in (r["prompt"] or [])]
        if history is None or got != history:
            at = next((i for i, (a, b) in enumerate(zip(got, history or [])) if a != b),
                      min(len(got), len(history or [])))
            want = "it has no assistant turn" if history is None else f"{len(history)} messages before its last assistant turn"
            raise CumedError(f"{where}: field prompt ({len(got)} messages) differs from the conversation in "
                             f"{conv_ref} ({want}) at message {at}; these responses answer another prompt: "
                             f"rank the conversations version they were generated from")
        by_prompt[pid].append(r)
    return dv.ref, by_prompt, {"rows": len(rows)}


def generated_pool(store: Store, conv_ref: str, responses_ref: str, k: int, seed, ledger: dict) -> tuple[str, str, dict, dict]:
    """(conversations ref, responses ref, {prompt_id: (prompt text, [Candidate])}, selection report)
    for the not-yet-queued prompts that have the doctor's answer and K-1 usable generated ones."""
    dv = store.get(conv_ref)
    if dv.kind != "conversations":
        raise CumedError(f"rank push --responses needs a conversations dataset (the doctor's answers); "
                         f"{dv.ref} is {dv.kind}")
    dialogues = {row["id"]: split_dialogue(row["messages"] or [])
                 for row in dv.to_arrow(columns=["id", "messages"]).to_pylist()}
    resp_ref, by_prompt, counts = _read_responses(store, responses_ref, dv.ref, dialogues)
    pool: dict[str, tuple[str, list[Candidate]]] = {}
    skipped: dict[str, list[str]] = {r: [] for r in SKIP_REASONS}
    queued = []
    empty = repeated = 0
    for pid in sorted(dialogues):
        split = dialogues[pid]
        if pid in ledger:
            queued.append(pid)
            continue
        if split is None or not split[1].strip():
            skipped["no_doctor_answer"].append(pid)
            continue
        history, doctor = split
        if not by_prompt.get(pid):
            skipped["no_responses"].append(pid)
            continue
        texts, usable = {_norm(doctor)}, []
        for r in sorted(by_prompt[pid], key=lambda r: (r["model"], r["sample"] or 0, r["response_id"])):
            text = r["response"] or ""
            if not text.strip():
                empty += 1
            elif _norm(text) in texts:
                repeated += 1
            else:
                texts.add(_norm(text))
                usable.append(r)
        if len(usable) < k - 1:
            skipped["too_few_responses"].append(pid)
            continue
        chosen = pick(seed, pid, usable, k - 1)
        pool[pid] = (prompt_text(history), [Candidate(DOCTOR, doctor, key=DOCTOR)]
                     + [Candidate(r["model"], r["response"], key=r["response_id"]) for r in chosen])
    report = {"responses_ref": resp_ref, "rule": RULE, "prompts": len(dialogues), "eligible": len(pool),
              "already_queued": len(queued), "skipped": {r: len(v) for r, v in skipped.items()},
              "skipped_examples": {r: v[:5] for r, v in skipped.items() if v},
              "responses": {"rows": counts["rows"], "empty": empty, "repeated_text": repeated}}
    return dv.ref, resp_ref, pool, report
