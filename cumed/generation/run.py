"""``generate``: prompts of a version → K samples from each target → one ``responses`` version."""

from __future__ import annotations

import os
import re
from pathlib import Path

from cumed.errors import CumedError
from cumed.generation.prompts import load_prompts
from cumed.generation.publish import publish_responses, to_rows
from cumed.generation.targets import Target
from cumed.lineage import config_hash


def default_work_dir() -> Path:
    """``$CUMED_CACHE/generate``, default ``.cache/generate`` (git-ignored), like the tokenised cache."""
    return Path(os.environ.get("CUMED_CACHE", ".cache")) / "generate"


def _cost(prompt_tokens: int, completion_tokens: int, price_in: float | None, price_out: float | None):
    if price_in is None and price_out is None:
        return None
    return round((prompt_tokens * (price_in or 0.0) + completion_tokens * (price_out or 0.0)) / 1e6, 6)


def generate(store, ref: str, targets: list[Target], *, k: int = 1, n: int | None = None, split: str | None = None,
             max_tokens: int = 512, temperature: float = 0.7, top_p: float = 0.95, seed: int = 0,
             name: str | None = None, work_dir: str | Path | None = None, concurrency: int = 8,
             timeout: float = 300.0, retry_failed: bool = False, price_in: float | None = None,
             price_out: float | None = None, progress=None):
    """Sample ``k`` responses per prompt from every target; publish them; return (version, report).

    ``progress(model, done, total)`` is called after every finished sample when given.
    """
    if not targets:
        raise CumedError("give at least one --model")
    if len({t.name for t in targets}) != len(targets):
        raise CumedError("the same --model name twice; name each model once (rows are keyed by model name)")
    if not 1 <= k <= 64:
        raise CumedError(f"--k {k}: give 1..64 samples per prompt")
    if not 1 <= concurrency <= 1024:
        raise CumedError(f"--concurrency {concurrency}: give 1..1024")
    if not 1 <= max_tokens <= 32768 or not 0 <= temperature <= 2 or not 0 < top_p <= 1:
        raise CumedError("sampling params out of range: --max-tokens 1..32768, --temperature 0..2, --top-p (0, 1]")
    for t in targets:
        t.check_runtime()
    src = store.get(ref)
    prompts, prompt_report = load_prompts(src, n, split)
    params = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p}
    generation = {"k": k, "n": n, "split": split, "seed": seed, "params": params, "prompt_kind": src.kind}
    work = Path(work_dir) if work_dir else default_work_dir()

    from cumed.generation.runner import run_target  # datatrove loads only when a run starts

    rows, failures, per_model, folders = [], [], [], []
    for t in targets:
        key = config_hash({"parent": src.ref, "content_hash": src.content_hash, "target": t.identity(), **generation})
        folder = work / f"{re.sub(r'[^A-Za-z0-9._-]', '_', t.name)[:40]}-{key[:16]}"
        total = len(prompts) * k
        done = [0]

        def tick(meta, out, _name=t.name, _done=done, _total=total):
            _done[0] += 1
            if progress is not None:
                progress(_name, _done[0], _total, meta["prompt_id"], "error" in out)

        res = run_target(t, prompts, k, params, seed, folder, concurrency=concurrency, timeout=timeout,
                         retry_failed=retry_failed, progress=tick)
        r, f = to_rows(t.name, res["results"])
        if not r:
            example = f[0] if f else {"prompt_id": "-", "error": "no results"}
            raise CumedError(f"all {len(f)} requests to model {t.name} failed (e.g. prompt {example['prompt_id']}: "
                             f"{example['error']}); fix the endpoint or model, then rerun with --retry-failed")
        pt, ct = sum(x["prompt_tokens"] for x in r), sum(x["completion_tokens"] for x in r)
        per_model.append({**t.public(), "responses": len(r), "failures": len(f), "requests_sent": res["sent"],
                          "reused": not res["ran"],  # a finished work folder was read back: no request
                          "prompt_tokens": pt, "completion_tokens": ct, "cost_usd": _cost(pt, ct, price_in, price_out)})
        rows += r
        failures += f
        folders.append(str(folder))
    pt, ct = sum(x["prompt_tokens"] for x in rows), sum(x["completion_tokens"] for x in rows)
    stats = {"prompts": len(prompts), "k": k, "responses": len(rows), "failures": len(failures),
             "prompt_tokens": pt, "completion_tokens": ct,
             "models": {m["name"]: {"responses": m["responses"], "failures": m["failures"],
                                    "prompt_tokens": m["prompt_tokens"], "completion_tokens": m["completion_tokens"]}
                        for m in per_model}}
    dv = publish_responses(store, name or f"{src.name}-responses", src, rows, targets, generation, stats)
    report = {"ref": dv.ref, "rows": dv.rows, "parent": src.ref, **prompt_report, "k": k, "models": per_model,
              "requests_sent": sum(m["requests_sent"] for m in per_model), "failures": failures,
              "prompt_tokens": pt, "completion_tokens": ct, "cost_usd": _cost(pt, ct, price_in, price_out),
              "work_dirs": folders}
    return dv, report
