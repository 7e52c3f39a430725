"""The paper's packing option: short single-turn QA pairs concatenated into one sample.

CUMed-LLaMA concatenates short question-answer pairs into one training sample separated by
special boundary tokens, so a step sees a full context window instead of mostly padding.
``pack_single_turn`` does this on ``conversations`` rows, as an option (recipe
``steps.pack.enabled``):

- only single-turn rows (exactly one user turn then one assistant turn, no system turn) are
  packed; multi-turn dialogues stay whole, since their history is context the answer depends on;
- rows are grouped by (split, source, department) so packing never mixes splits (the near-dup
  aware split stays valid) and a row keeps a single source;
- greedily, in id order, pairs are appended while the packed sample stays within
  ``max_tokens`` (counted with ``curation.tokens.TokenCounter``); a pair longer than the
  budget stays alone;
- the packed row's messages are u1, a1, u2, a2, ...; every user turn after the first starts
  with the ``boundary`` marker (default ``<|qa_boundary|>``: add it to the tokenizer as a
  special token), which tells the model that what came before is unrelated;
- the packed row's id is ``stable_id("packed", *member ids)`` and ``metadata.packed_ids``
  lists the members, so accounting (every input dialogue is kept or removed) still holds.
"""

from __future__ import annotations

import json
from collections import defaultdict

from cumed.ids import stable_id
from curation.tokens import TokenCounter


def _single_turn(row: dict) -> bool:
    roles = [m["role"] for m in row["messages"]]
    return roles == ["user", "assistant"]


def pack_single_turn(rows: list[dict], max_tokens: int = 1024, boundary: str = "<|qa_boundary|>",
                     counter: TokenCounter | None = None) -> tuple[list[dict], dict]:
    counter = counter or TokenCounter()
    out, groups = [], defaultdict(list)
    for r in rows:
        (groups[(r["split"], r["source"], r["department"])] if _single_turn(r) else out).append(r)
    stats = {"packed_rows": 0, "packed_members": 0, "max_tokens": max_tokens, "boundary": boundary,
             "tokenizer": counter.name}
    for key in sorted(groups):
        cur, cur_tokens = [], 0
        members = sorted(groups[key], key=lambda r: r["id"])

        def flush():
            if len(cur) == 1:
                out.append(cur[0])
            elif cur:
                msgs = []
                for k, r in enumerate(cur):
                    u, a = r["messages"]
                    msgs.append({"role": "user", "content": (boundary + u["content"]) if k else u["content"]})
                    msgs.append({"role": "assistant", "content": a["content"]})
                meta = {"packed_ids": [r["id"] for r in cur], "packed": True}
                out.append({**cur[0], "id": stable_id("packed", *meta["packed_ids"]), "messages": msgs,
                            "n_turns": len(msgs), "metadata": json.dumps(meta, ensure_ascii=False, sort_keys=True)})
                stats["packed_rows"] += 1
                stats["packed_members"] += len(cur)

        for r in members:
            t = counter.count(r["messages"][0]["content"]) + counter.count(r["messages"][1]["content"]) + 1
            if cur and cur_tokens + t > max_tokens:
                flush()
                cur, cur_tokens = [], 0
            cur.append(r)
            cur_tokens += t
        flush()
    out.sort(key=lambda r: r["id"])
    return out, stats
