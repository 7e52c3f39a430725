"""``annotate``: a stratified sample of a documents version -> a model's rubric scores -> a ``labels`` version.

The requests go through the generator's runner (``cumed.generation.runner.run_target``: datatrove's
``InferenceRunner``, the key rule, retries, resumable work folders), one request per document. A
reply without a valid score (``replies.parse_score``) or a request that failed is a counted failure
naming the document id; the documents that got a score are published, and nothing is published when
none did. The same command again reads the finished work folder back and sends no request.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cumed.atomic import write_json
from cumed.errors import CumedError
from cumed.lineage import config_hash

from annotation.scoring.publish import label_of, publish_labels
from annotation.scoring.replies import BadScore, parse_score
from annotation.scoring.rubrics import get_rubric
from annotation.scoring.sampling import strata, stratified_sample


def default_work_dir() -> Path:
    """``$CUMED_CACHE/annotate``, default ``.cache/annotate`` (git-ignored), beside ``generate``'s."""
    return Path(os.environ.get("CUMED_CACHE", ".cache")) / "annotate"


def annotate(store, ref: str, target, rubric: str, *, n: int | None = None, per_source: int | None = None,
             seed: int = 0, threshold: float | None = None, max_chars: int = 3000, max_tokens: int = 256,
             temperature: float = 0.0, name: str | None = None, work_dir: str | Path | None = None,
             concurrency: int = 8, timeout: float = 300.0, retry_failed: bool = False, progress=None):
    """Score the sample with ``rubric``; publish the labels; return (version, report)."""
    rb = get_rubric(rubric)
    thr = rb.threshold if threshold is None else float(threshold)
    if not 0 <= thr <= 5:
        raise CumedError(f"--threshold {thr}: give a score 0-5 (documents scoring at least this are keep)")
    if not 100 <= max_chars <= 200_000:
        raise CumedError(f"--max-chars {max_chars}: give 100..200000 characters of each document")
    if not 1 <= max_tokens <= 4096 or not 0 <= temperature <= 2:
        raise CumedError("sampling params out of range: --max-tokens 1..4096, --temperature 0..2")
    target.check_runtime()
    src = store.get(ref)
    if src.kind != "documents":
        raise CumedError(f"cumed annotate scores documents; {src.ref} is {src.kind} (give a documents version)")
    frame = src.to_pandas(columns=["id", "text", "source", "category"])
    ids = stratified_sample(frame, n=n, per_stratum=per_source, seed=seed)
    if not ids:
        raise CumedError(f"{src.ref} has no documents to score")
    docs = frame.set_index("id").loc[ids]
    prompts = [{"prompt_id": i, "messages": rb.messages(t or "", max_chars)} for i, t in zip(ids, docs["text"])]
    params = {"max_tokens": max_tokens, "temperature": temperature}
    sample_rule = {"n": n, "per_source": per_source, "seed": seed, "strata": "source/category"}
    key = config_hash({"parent": src.ref, "content_hash": src.content_hash, "target": target.identity(),
                       "rubric": rb.version, "rubric_sha256": rb.sha256, "sample": sample_rule,
                       "max_chars": max_chars, "params": params})
    folder = (Path(work_dir) if work_dir else default_work_dir()) / \
        f"{rb.name}-{re.sub(r'[^A-Za-z0-9._-]', '_', target.name)[:40]}-{key[:16]}"
    done = [0]

    def tick(meta, out):
        done[0] += 1
        if progress is not None:
            progress(done[0], len(prompts), meta["prompt_id"], "error" in out)

    from cumed.generation.runner import run_target  # datatrove loads only when a run starts

    res = run_target(target, prompts, 1, params, seed, folder, concurrency=concurrency, timeout=timeout,
                     retry_failed=retry_failed, progress=tick)
    source_of = dict(zip(ids, docs["source"]))
    rows, failures, pt, ct = [], [], 0, 0
    for r in sorted(res["results"].values(), key=lambda r: r["prompt_id"]):
        doc, out = r["prompt_id"], r["result"]
        try:
            if "error" in out:
                raise BadScore("request", out["error"])
            pt, ct = pt + int(out["prompt_tokens"]), ct + int(out["completion_tokens"])
            score, reason = parse_score(out["response"])
        except BadScore as e:
            failures.append({"id": doc, "source": source_of.get(doc), "error": str(e)})
            continue
        rows.append({"id": doc, "source": source_of[doc], "score": score, "label": label_of(score, thr),
                     "reason": reason, "model": target.name, "rubric": rb.version})
    failures_file = folder / "failures.json"
    write_json(failures_file, failures)
    if not rows:
        ex = ", ".join(f["id"] for f in failures[:5])
        raise CumedError(f"no document of {src.ref} got a valid {rb.name} score from model {target.name}: all "
                         f"{len(failures)} failed (e.g. {ex}: {failures[0]['error'] if failures else 'no result'}); "
                         f"nothing published. Check that the model follows the JSON reply format, then rerun "
                         f"with --retry-failed (every failure, by document id: {failures_file})")
    scoring = {"rubric": rb.name, "rubric_version": rb.version, "rubric_sha256": rb.sha256, "threshold": thr,
               "sample": sample_rule, "max_chars": max_chars, "params": params}
    sampled, scored = strata(frame, ids), strata(frame, [r["id"] for r in rows])
    stats = {"sampled": len(ids), "scored": len(rows), "failures": len(failures),
             "keep": sum(r["label"] == "keep" for r in rows), "discard": sum(r["label"] == "discard" for r in rows),
             "strata": {s: {"sampled": k, "scored": scored.get(s, 0)} for s, k in sampled.items()},
             "prompt_tokens": pt, "completion_tokens": ct}
    dv = publish_labels(store, name or f"{src.name}-{rb.name}-labels", src, rows, target, scoring, stats)
    report = {"ref": dv.ref, "rows": dv.rows, "parent": src.ref, "rubric": rb.version, "threshold": thr,
              "model": target.public(), **stats, "requests_sent": res["sent"], "reused": not res["ran"],
              "failed": failures, "failures_file": str(failures_file), "work_dir": str(folder)}
    return dv, report
