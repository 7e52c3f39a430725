"""The prompts of a version: what a model is asked, with the id its responses keep.

conversations: the ``id``; the messages up to (not including) the last assistant turn, kept only
when they end with a user turn. rankings: the ``prompt_id``; the ``prompt`` as one user turn.
Rows are taken in id order, so ``--n`` picks the same prompts on every run.
"""

from __future__ import annotations

from cumed.errors import CumedError

KINDS = ("conversations", "rankings")


def context(messages: list[dict]) -> list[dict] | None:
    """The history a conversation's last answer replied to, or None when it does not end with a user turn."""
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
    ctx = msgs[:last] if last is not None else msgs
    return ctx if ctx and ctx[-1]["role"] == "user" else None


def load_prompts(dv, n: int | None = None, split: str | None = None) -> tuple[list[dict], dict]:
    """``[{prompt_id, messages}]`` (first ``n`` in id order) and a report of rows skipped."""
    if dv.kind not in KINDS:
        raise CumedError(f"cumed generate reads prompts from {' or '.join(KINDS)} versions; {dv.ref} is {dv.kind}")
    if n is not None and n < 1:
        raise CumedError(f"--n {n}: give at least 1 prompt")
    table = dv.to_arrow()
    if split:
        if "split" not in table.column_names:
            raise CumedError(f"--split {split}: {dv.ref} has no split column; leave --split out")
        import pyarrow.compute as pc

        table = table.filter(pc.equal(table["split"], split))
    prompts, skipped = [], []
    if dv.kind == "conversations":
        for r in sorted(table.select(["id", "messages"]).to_pylist(), key=lambda r: r["id"]):
            ctx = context(r["messages"] or [])
            if ctx is None:
                skipped.append(r["id"])
                continue
            prompts.append({"prompt_id": r["id"], "messages": ctx})
            if n is not None and len(prompts) == n:
                break
    else:
        for r in sorted(table.select(["prompt_id", "prompt"]).to_pylist(), key=lambda r: r["prompt_id"]):
            if not r["prompt"]:
                skipped.append(r["prompt_id"])
                continue
            prompts.append({"prompt_id": r["prompt_id"], "messages": [{"role": "user", "content": r["prompt"]}]})
            if n is not None and len(prompts) == n:
                break
    if not prompts:
        raise CumedError(f"no prompts in {dv.ref}{f' split {split!r}' if split else ''}: conversations need a user "
                         "turn before an assistant turn, rankings a non-empty prompt")
    return prompts, {"prompts": len(prompts), "skipped_rows": len(skipped), "skipped_examples": skipped[:10]}
