"""Answers A and B from two ``responses`` versions (``cumed generate``, or rejection sampling through
the generator), matched on ``prompt_id``.

Each side is one model's ``sample`` (default 0) of a version; a version holding several models
needs the model named. The judge's items are the union of both sides' prompts, so a prompt that
only one side answered is judged ``invalid`` ("no answer from B") and listed, never dropped; a
prompt id whose messages differ between A and B (two different prompt sets) is invalid too.
The judge sees one text per prompt: the user turn, or the whole history when there is one.
"""

from __future__ import annotations

from cumed.errors import CumedError

from training.evaluation.benchmarks import BenchItem, is_urology

ROLE = {"system": "系统 / System", "user": "患者 / Patient", "assistant": "医生 / Doctor"}


def prompt_text(messages: list[dict]) -> str:
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n".join(f"{ROLE.get(m['role'], m['role'])}: {m['content']}" for m in messages)


def side(dv, sample: int = 0, model: str | None = None) -> dict:
    """``{ref, model, answers: {prompt_id: text}, prompts: {prompt_id: messages}}`` of one side."""
    if dv.kind != "responses":
        raise CumedError(f"{dv.ref} is {dv.kind}; the judge compares responses versions (cumed generate)")
    rows = dv.to_arrow(columns=["prompt_id", "prompt", "model", "sample", "response"]).to_pylist()
    models = sorted({r["model"] for r in rows})
    if model is None:
        if len(models) > 1:
            raise CumedError(f"{dv.ref} holds responses of {', '.join(models)}; name one with --a-model/--b-model")
        model = models[0] if models else None
    elif model not in models:
        raise CumedError(f"{dv.ref} has no responses of model {model!r}; it has {', '.join(models) or 'none'}")
    rows = [r for r in rows if r["model"] == model]
    if rows and not any(r["sample"] == sample for r in rows):
        have = sorted({r["sample"] for r in rows})
        raise CumedError(f"--sample {sample}: {dv.ref} has samples {', '.join(map(str, have))} of {model}")
    mine = [r for r in rows if r["sample"] == sample]
    return {"ref": dv.ref, "model": model, "answers": {r["prompt_id"]: r["response"] for r in mine},
            "prompts": {r["prompt_id"]: [{"role": m["role"], "content": m["content"]} for m in r["prompt"]]
                        for r in rows}}


def pair(a: dict, b: dict) -> tuple[list[BenchItem], dict[str, str], dict]:
    """(items in prompt id order, ``{id: reason}`` for the items that cannot be judged, a report)."""
    ids = sorted(set(a["prompts"]) | set(b["prompts"]))
    items, skip = [], {}
    for pid in ids:
        msgs = a["prompts"].get(pid) or b["prompts"][pid]
        if pid in a["prompts"] and pid in b["prompts"] and a["prompts"][pid] != b["prompts"][pid]:
            skip[pid] = "A and B answered different prompts under this id"
        text = prompt_text(msgs)
        items.append(BenchItem(pid, text, None, is_urology(text)))
    report = {"prompts": len(ids), "only_a": sorted(set(a["answers"]) - set(b["answers"])),
              "only_b": sorted(set(b["answers"]) - set(a["answers"])), "different_prompt": sorted(skip)}
    return items, skip, report
