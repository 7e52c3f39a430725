"""Rejection sampling through the generator (a real ``cumed serve`` of the policy, reached through
datatrove's InferenceRunner) publishes the same kind of version as the in-process sampler, with
the responses version as a parent and the generator in its lineage; the judge compares two
responses versions matched on prompt id."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from cumed.errors import CumedError
from cumed.schemas import schema_for
from training.rejection import sample_and_publish, train_rs
from training.reward_scoring import score
from cumed.generation.local_server import serve_checkpoint

from .conftest import tiny_cfg
from .test_evaluation import GOOD, Server, prefers_good
from .test_rejection import checkpoints  # noqa: F401 - the tiny policy and reward model

SMALL = dict(n_prompts=4, samples_per_prompt=3, top_k=1, max_new_tokens=8, seed=11)


def answered(log) -> list[str]:
    return [e["fingerprint"] for e in map(json.loads, log.read_text().splitlines()) if e["status"] == "answered"] \
        if log.exists() else []


def test_rs_through_a_local_cumed_serve(toy_store, toy_tokenizer, checkpoints, tmp_path):  # noqa: F811
    from transformers import AutoModelForSequenceClassification

    st, refs = toy_store
    tok, _ = toy_tokenizer
    policy, reward = checkpoints
    log = tmp_path / "requests.jsonl"
    base = {k: v for k, v in tiny_cfg("rs").items() if k in ("block_size", "micro_batch_size", "batch_size",
                                                                "checkpoint_every", "schedule", "warmup_ratio")}
    res = train_rs(st, refs["sft"], policy, reward, max_steps=2, runs_dir=tmp_path / "runs", generator="local",
                   serve_request_log=str(log), publish_name="toy-rs-gen", **SMALL, **base)
    assert len(answered(log)) == 4 * 3 and len(set(answered(log))) == 12  # one request per (prompt, sample)
    assert res["generator"]["requests_sent"] == 12 and res["generator"]["failures"] == []
    assert res["sampled"] == 12 and res["kept"] == 4 and res["steps"] == 2

    dv = st.get(res["published"])
    rv = st.get(res["generator"]["responses"])
    assert dv.kind == "conversations" and rv.kind == "responses" and rv.rows == 12
    assert dv.rows == 4 and dv.rows + dv.removed_rows == 12
    lin = dv.manifest["lineage"]
    assert lin["parents"] == [refs["sft"], rv.ref] and rv.manifest["lineage"]["parents"] == [refs["sft"]]
    g = lin["generator"]
    assert g["kind"] == "local" and g["server"] == "local" and g["model"] == policy.parent.name
    assert g["responses"] == rv.ref and g["path"] == str(policy) and g["endpoint"] is None
    assert g["params"] == {"max_tokens": 8, "temperature": 0.8, "top_p": 0.95} and g["samples_per_prompt"] == 3
    assert set(lin["checkpoints"]) == {"policy", "reward"}
    ck = json.loads((Path(res["final"]) / "lineage.json").read_text(encoding="utf-8"))
    assert ck["stage"] == "rs" and ck["generator"]["responses"] == rv.ref
    assert ck["datasets"]["responses"]["ref"] == rv.ref and ck["datasets"]["train"]["ref"] == dv.ref

    # the RS rows are the responses version's samples, rescored independently: the kept one is the best
    responses = {(r["prompt_id"], r["sample"]): r for r in rv.to_arrow().to_pylist()}
    rows = dv.to_arrow().to_pylist() + dv.to_arrow("removed").to_pylist()
    rm = AutoModelForSequenceClassification.from_pretrained(str(reward), num_labels=1)
    for pid in {r["prompt_id"] for r in rows}:
        mine = sorted((r for r in rows if r["prompt_id"] == pid), key=lambda r: r["sample"])
        src = [responses[(pid, r["sample"])] for r in mine]
        assert [r["messages"][:-1] for r in mine] == [s["prompt"] for s in src]
        assert [r["messages"][-1]["content"] for r in mine] == [s["response"].strip() for s in src]
        want = score(rm, tok, src[0]["prompt"][-1]["content"], [r["messages"][-1]["content"] for r in mine], 256)
        assert [r["reward"] for r in mine] == pytest.approx(want, abs=1e-5)
        kept = [r for r in mine if r.get("removed_by") is None]
        assert len(kept) == 1 and kept[0]["rank"] == 1 and kept[0]["reward"] == max(want)

    # the same schema and kind as the in-process sampler's version
    cfg = tiny_cfg("rs", **SMALL, publish_name="toy-rs-inproc")
    inproc = st.get(sample_and_publish(st, refs["sft"], policy, reward, cfg)["ref"])
    assert inproc.kind == dv.kind and inproc.to_arrow().schema == dv.to_arrow().schema
    assert inproc.to_arrow("removed").schema == dv.to_arrow("removed").schema and "generator" not in inproc.manifest["lineage"]

    # sampling again: the generator's work folder answers, no request reaches the server
    cfg = tiny_cfg("rs", **SMALL, publish_name="toy-rs-gen", generator="local", serve_request_log=str(log))
    again = sample_and_publish(st, refs["sft"], policy, reward, cfg)
    assert len(answered(log)) == 12 and again["generator"]["requests_sent"] == 0
    assert again["lineage"]["generator"]["responses"] == rv.ref


def test_rs_through_an_endpoint(toy_store, checkpoints, tmp_path):  # noqa: F811
    st, refs = toy_store
    policy, reward = checkpoints
    log = tmp_path / "requests.jsonl"
    with serve_checkpoint(policy, "team-policy", log) as url:
        cfg = tiny_cfg("rs", **{**SMALL, "n_prompts": 2, "samples_per_prompt": 2}, generator="endpoint",
                       base_url=url, model_name="team-policy", publish_name="toy-rs-endpoint")
        pub = sample_and_publish(st, refs["sft"], policy, reward, cfg)
    assert len(answered(log)) == 4 and pub["samples"] == 4 and pub["kept"] == 2
    g = st.get(pub["ref"]).manifest["lineage"]["generator"]
    assert g["kind"] == "endpoint" and g["model"] == "team-policy" and g["endpoint"] == url.removesuffix("/v1")


def test_generator_options_are_checked_before_any_work(toy_store, checkpoints):  # noqa: F811
    st, refs = toy_store
    policy, reward = checkpoints
    for bad, match in (({"generator": "endpoint"}, "--base-url URL and --model-name"),
                       ({"generator": "local", "base_url": "http://x/v1"}, "starts its own server"),
                       ({"generator": "gpu"}, "use one of inprocess")):
        with pytest.raises(CumedError, match=match):
            train_rs(st, refs["sft"], policy, reward, **bad)
    with pytest.raises(CumedError, match="vllm is not installed"):
        sample_and_publish(st, refs["sft"], policy, reward, tiny_cfg("rs", generator="vllm"))


# --------------------------------------------------------------------------- eval judge on responses versions


def _responses(model, answers: dict[str, str], prompts: dict[str, str] | None = None) -> pa.Table:
    rows = []
    for pid, text in answers.items():
        question = (prompts or {}).get(pid, f"医生您好，{pid}尿频怎么办？")
        for sample in (0, 1):
            rows.append({"response_id": f"{model}-{pid}-{sample}", "prompt_id": pid,
                         "prompt": [{"role": "user", "content": question}],
                         "model": model, "sample": sample, "response": text if sample == 0 else "不知道。",
                         "finish_reason": "stop", "params": "{}", "prompt_tokens": 5, "completion_tokens": 3})
    return pa.Table.from_pylist(rows, schema=schema_for("responses"))


def test_eval_judge_compares_two_responses_versions(toy_store, tmp_path, monkeypatch, capsys):
    from cumed.cli import main

    st, refs = toy_store
    srv = Server(prefers_good)
    try:
        a = st.publish("judge-a", _responses("sft", {"p1": GOOD, "p2": GOOD, "p3": GOOD, "p4": GOOD}),
                       kind="responses").ref
        worse = {pid: "多喝水。" for pid in ("p1", "p2", "p3", "p5")}
        b = st.publish("judge-b", _responses("rs", worse, {"p3": "另一个问题"}), kind="responses").ref
        monkeypatch.setenv("CUMED_JUDGE_BASE_URL", srv.url)
        monkeypatch.setenv("CUMED_JUDGE_MODEL", "judge-x")
        args = ["eval", "judge", "--a", a, "--b", b, "--store", str(st.root), "--cache-dir", str(tmp_path / "jc"),
                "--workers", "1", "--json"]
        main(args)
        res = json.loads(capsys.readouterr().out)
        assert res["model_a"] == f"{a}:sft" and res["model_b"] == f"{b}:rs" and res["n_items"] == 5
        # p1, p2 judged (A has GOOD: A wins); p3 asks different prompts; p4 only in A; p5 only in B
        assert res["summary"]["n_valid"] == 2 and all(res["summary"][d]["win"] == 2 for d in ("relevance", "expertise"))
        bad = {x["id"]: x["reason"] for x in res["invalid"]}
        assert bad == {"p3": "A and B answered different prompts under this id", "p4": "no answer from B",
                       "p5": "no answer from A"}
        assert res["responses"]["only_a"] == ["p4"] and res["responses"]["only_b"] == ["p5"]
        assert srv.requests == 4  # both orders of the two valid items

        main([*args, "--sample", "1"])  # sample 1 of both: the same answer on each side
        res = json.loads(capsys.readouterr().out)
        assert res["summary"]["n_valid"] == 2 and res["summary"]["relevance"]["draw"] == 2

        with pytest.raises(SystemExit):
            main(["eval", "judge", "--a", a, "--b", refs["sft"], "--store", str(st.root)])
        assert "is conversations" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            main(["eval", "judge", "--a", a, "--b", b, "--bench", "huatuo26m_test", "--store", str(st.root)])
        assert "leave --bench out" in capsys.readouterr().err
    finally:
        srv.close()
