"""The ``responses`` version: one row per (prompt, model, sample) that got an answer.

``response_id`` is opaque (``stable_id`` over prompt id, model, sample) so a ranking task can show
responses without naming their model. Lineage: parents [the prompts version]; ``models`` the
targets (name, server kind, endpoint host; never a key or a full URL); ``generation`` the
sampling params, k, n and split.
"""

from __future__ import annotations

import json

import pyarrow as pa

from cumed.ids import stable_id
from cumed.lineage import build_lineage, config_hash
from cumed.schemas import schema_for

CODE_PACKAGES = ("cumed",)


def response_id(prompt_id: str, model: str, sample: int) -> str:
    return stable_id("resp", prompt_id, model, sample)


def to_rows(model: str, results: dict[str, dict]) -> tuple[list[dict], list[dict]]:
    """(rows, failures) of one model's results."""
    rows, failures = [], []
    for r in results.values():
        res = r["result"]
        if "error" in res:
            failures.append({"prompt_id": r["prompt_id"], "model": model, "sample": r["sample"], "error": res["error"]})
            continue
        rows.append({"response_id": response_id(r["prompt_id"], model, r["sample"]), "prompt_id": r["prompt_id"],
                     "prompt": r["prompt"], "model": model, "sample": int(r["sample"]), "response": res["response"],
                     "finish_reason": res["finish_reason"], "params": json.dumps(r["params"], sort_keys=True),
                     "prompt_tokens": int(res["prompt_tokens"]), "completion_tokens": int(res["completion_tokens"])})
    return rows, sorted(failures, key=lambda f: (f["prompt_id"], f["sample"]))


def publish_responses(store, name: str, src, rows: list[dict], targets: list, generation: dict, stats: dict):
    rows = sorted(rows, key=lambda r: (r["prompt_id"], r["model"], r["sample"]))
    table = pa.Table.from_pylist(rows, schema=schema_for("responses"))
    models = [t.public() for t in targets]
    lineage = build_lineage(recipe=None, config_hash=config_hash({"parent": src.ref, "content_hash": src.content_hash,
                                                                  "models": [t.identity() for t in targets],
                                                                  **generation}),
                            code_packages=CODE_PACKAGES, parents=[src.ref], models=models, executor="local",
                            generation=generation)
    names = ", ".join(f"{m['name']} ({m.get('endpoint') or m.get('path')})" for m in models)
    card = (f"# {name}: model responses to {src.ref}\n\n{len(rows)} responses from {names}; "
            f"{generation['k']} samples per prompt, params {json.dumps(generation['params'], sort_keys=True)}.\n")
    return store.publish(name, table, kind="responses", stats=stats, lineage=lineage, card=card)
