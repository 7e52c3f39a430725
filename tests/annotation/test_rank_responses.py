"""Ranking tasks from generated answers (`rank push REF --k 4 --responses RESPONSES_REF`): the
doctor's answer plus three models' per task, opaque and shuffled; on a real Label Studio server
through the CLI, and once on the file backend."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

import pyarrow as pa
import pytest

from annotation.ranking.config import result_items
from annotation.ranking.pairs import build_pairs
from annotation.ranking.queue import batch_tasks, pull, push
from annotation.review.file_backend import FileBackend
from cumed.errors import CumedError
from cumed.schemas import SCHEMAS
from cumed.store import Store
from tests.annotation.test_ranking import export

MODELS = ["gpt-4o-mini", "qwen2.5-7b-instruct", "deepseek-chat"]
RANK = ["doctor"] + MODELS  # the order the simulated ranker gives
FULL = [f"c{i}" for i in range(6)]  # three models each
FEW, NONE = "c-few", "c-none"  # two responses; none


def dialogue(pid: str) -> list[dict]:
    if pid == "c1":  # a system prompt: part of the history the models saw, not shown to rankers
        return [{"role": "system", "content": "你是一名医生。"}, {"role": "user", "content": "头痛三天怎么办？"},
                {"role": "assistant", "content": "c1 先测血压，必要时就诊。"}]
    if pid == "c2":  # multi-turn: the last assistant turn is the answer ranked
        return [{"role": "user", "content": "孩子发烧38度。"}, {"role": "assistant", "content": "几天了？"},
                {"role": "user", "content": "两天了。"}, {"role": "assistant", "content": "c2 物理降温，超过三天就医。"}]
    return [{"role": "user", "content": f"问题{pid}：胃痛吃什么药？"},
            {"role": "assistant", "content": f"{pid} 先查明原因，不要自行用药。"}]


def conversations_table(ids) -> pa.Table:
    rows = [{"id": pid, "messages": dialogue(pid), "source": "test", "department": "",
             "n_turns": sum(m["role"] == "user" for m in dialogue(pid)), "split": "train"} for pid in ids]
    return pa.Table.from_pylist(rows, schema=SCHEMAS["conversations"])


def response_row(pid: str, model: str, sample: int = 0, prompt=None, text=None) -> dict:
    """A row as `cumed generate` publishes it: opaque id, the history before the last assistant turn."""
    msgs = dialogue(pid)
    last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    return {"response_id": hashlib.sha256(f"{pid}|{model}|{sample}".encode()).hexdigest()[:16], "prompt_id": pid,
            "prompt": msgs[:last] if prompt is None else prompt, "model": model, "sample": sample,
            # the text never names its model: the test checks that nothing in a task does
            "response": text or f"回答{MODELS.index(model) + 1}-{sample}：{pid} 建议多喝水、按时复诊。",
            "finish_reason": "stop", "params": json.dumps({"temperature": 0.7}), "prompt_tokens": 12,
            "completion_tokens": 20}


def responses_table(rows) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMAS["responses"])


def publish_inputs(st: Store, name: str) -> tuple[str, str]:
    conv = st.publish(name, conversations_table(FULL + [FEW, NONE]), kind="conversations")
    rows = [response_row(pid, m) for pid in FULL for m in MODELS] + [response_row(FEW, m) for m in MODELS[:2]]
    resp = st.publish(f"{name}-responses", responses_table(rows), kind="responses")
    return conv.ref, resp.ref


def check_tasks(task_data: list[dict], info: dict, conv_ids) -> None:
    """Four opaque responses each, the doctor's among them, no model named, order varying."""
    orders = []
    for data in task_data:
        pid = data["prompt_id"]
        rec = info["prompts"][pid]
        items = data["responses"]
        assert len(items) == 4 and all(set(i) == {"id", "title", "body"} for i in items)
        assert all(re.fullmatch(r"r[0-9a-f]{6}", i["id"]) for i in items)
        assert dialogue(pid)[-1]["content"] in [i["body"] for i in items]
        text = json.dumps(data, ensure_ascii=False).lower()
        for word in MODELS + ["doctor", "qwen", "gpt", "deepseek", "model", "source_id"]:
            assert word not in text, (word, pid)
        by_id = {r["response_id"]: r["model"] for r in rec["responses"]}
        assert sorted(by_id.values()) == sorted(RANK)
        orders.append(tuple(by_id[i["id"]] for i in items))
    assert len(set(orders)) > 1, orders  # shuffled per task, not one fixed position per model


def ranked(rec: dict) -> list[str]:
    by_model = {r["model"]: r["response_id"] for r in rec["responses"]}
    return [by_model[m] for m in RANK]


def test_rank_push_responses_on_labelstudio(ls_server, backend_factory, dataset, tmp_path):
    st = Store(tmp_path / "store")
    conv_ref, resp_ref = publish_inputs(st, dataset)
    ls = ["--ls-token-file", str(ls_server.env_file)]
    run = lambda *a: subprocess.run([sys.executable, "-c", "from cumed.cli import main; main()", *a,  # noqa: E731
                                     "--store", str(st.root), "--json"], capture_output=True, text=True, timeout=300)

    p = run("rank", "push", conv_ref, "--k", "4", "--responses", resp_ref, "--backend", "labelstudio", *ls)
    assert p.returncode == 0, p.stderr
    pushed = json.loads(p.stdout)
    assert pushed["tasks"] == pushed["pushed"] == len(FULL) and pushed["responses_ref"] == resp_ref
    sel = pushed["selection"]
    assert sel["skipped"] == {"no_doctor_answer": 0, "no_responses": 1, "too_few_responses": 1}
    assert sel["skipped_examples"] == {"no_responses": [NONE], "too_few_responses": [FEW]}
    assert sel["prompts"] == 8 and sel["eligible"] == sel["queued"] == len(FULL)

    info = json.loads((st.root / "_ranking" / dataset / pushed["batch"] / "batch.json").read_text(encoding="utf-8"))
    b = backend_factory(task_type="ranking")
    tasks = b.pull(pushed["batch"], dataset)
    assert sorted(t["data"]["prompt_id"] for t in tasks) == FULL
    check_tasks([t["data"] for t in tasks], info, FULL)
    c1 = next(t for t in tasks if t["data"]["prompt_id"] == "c1")
    assert c1["data"]["prompt"] == "头痛三天怎么办？"  # the system prompt is not shown
    c2 = next(t for t in tasks if t["data"]["prompt_id"] == "c2")
    assert "两天了。" in c2["data"]["prompt"] and "几天了？" in c2["data"]["prompt"]

    for t in tasks:  # the ranker: doctor, then the models in MODELS order
        b.client.annotations.create(id=t["id"], result=result_items(ranked(info["prompts"][t["data"]["prompt_id"]])))
    p = run("rank", "pull", pushed["batch"], "--name", f"{dataset}-rk", *ls)
    assert p.returncode == 0, p.stderr
    pulled = json.loads(p.stdout)
    assert pulled["rankings"] == len(FULL) and not pulled["problems"] and not pulled["counts"]["mismatch"]
    rk = st.get(pulled["ref"])
    assert set(rk.manifest["lineage"]["parents"]) == {conv_ref, resp_ref}
    for row in rk.to_arrow().to_pylist():
        assert sorted(r["model"] for r in row["responses"]) == sorted(RANK)
        assert set(row["responses"][0]) == {"response_id", "text", "model"}

    p = run("rank", "pairs", pulled["ref"], "--name", f"{dataset}-rm", "--cluster-threshold", "0")
    assert p.returncode == 0, p.stderr
    prefs = st.get(json.loads(p.stdout)["ref"]).to_arrow().to_pylist()
    assert len(prefs) == 3 * len(FULL)  # adjacent pairs of four ranks
    for r in prefs:
        shown = {i["body"] for t in tasks if t["data"]["prompt_id"] == r["prompt_id"] for i in t["data"]["responses"]}
        assert r["chosen"] in shown and r["rejected"] in shown
        assert RANK.index(r["chosen_model"]) + 1 == RANK.index(r["rejected_model"])
    assert sum(r["chosen_model"] == "doctor" for r in prefs) == len(FULL)
    assert {r["chosen"] for r in prefs if r["chosen_model"] == "doctor"} == {dialogue(p)[-1]["content"] for p in FULL}


def test_rank_push_responses_file_backend(tmp_path):
    st = Store(tmp_path / "store")
    conv_ref, resp_ref = publish_inputs(st, "conv")
    res = push(st, conv_ref, 4, FileBackend, k=4, seed=3, responses_ref=resp_ref)
    assert res["tasks"] == 4 and res["selection"]["not_sampled"] == 2
    tasks = json.load(open(res["tasks_file"], encoding="utf-8"))
    batch_dir = st.root / "_ranking" / "conv" / res["batch"]
    info = json.loads((batch_dir / "batch.json").read_text(encoding="utf-8"))
    check_tasks([t["data"] for t in tasks], info, FULL)
    assert batch_tasks(info) == tasks  # a resumed push rebuilds the same ids and order (salt kept)
    src = {r["model"]: r.get("source_id") for rec in info["prompts"].values() for r in rec["responses"]}
    assert src["doctor"] == "doctor" and all(len(src[m]) == 16 for m in MODELS)

    exp = tmp_path / "export.json"
    exp.write_text(json.dumps(export(tasks, {"a@x": {pid: ranked(rec) for pid, rec in info["prompts"].items()}}),
                              ensure_ascii=False), encoding="utf-8")
    out = pull(st, res["batch"], FileBackend(batch_dir), str(exp), publish="rk")
    assert out["rankings"] == 4 and st.get(out["ref"]).manifest["lineage"]["parents"] == [conv_ref, resp_ref]
    prefs, _ = build_pairs(st.get(out["ref"]).to_arrow(), cluster_threshold=None)
    assert prefs.num_rows == 12 and set(prefs.column("chosen_model").to_pylist()) == set(RANK[:3])

    # the next push takes the two prompts left; the skipped ones stay skipped
    again = push(st, conv_ref, 10, FileBackend, k=4, seed=3, responses_ref=resp_ref)
    assert again["tasks"] == 2 and again["selection"]["already_queued"] == 4
    with pytest.raises(CumedError, match="no prompt of conv@1 can make a task.*6 already queued.*too_few_responses 1"):
        push(st, conv_ref, 10, FileBackend, k=4, seed=3, responses_ref=resp_ref)


def test_distinct_models_first_then_samples(tmp_path):
    st = Store(tmp_path / "store")
    conv = st.publish("conv", conversations_table(["c0", "c3"]), kind="conversations")
    rows = [response_row(pid, m, s) for pid in ("c0", "c3") for m in MODELS[:2] for s in range(3)]
    rows.append(response_row("c3", MODELS[2], text="c3 先查明原因，不要自行用药。"))  # the doctor's text again
    resp = st.publish("conv-responses", responses_table(rows), kind="responses")
    res = push(st, conv.ref, 2, FileBackend, k=4, seed=0, responses_ref=resp.ref)
    info = json.loads((st.root / "_ranking" / "conv" / res["batch"] / "batch.json").read_text(encoding="utf-8"))
    for rec in info["prompts"].values():
        models = sorted(r["model"] for r in rec["responses"])
        # two models: one sample each, then a second sample of one of them; never the repeated text
        assert models.count("doctor") == 1 and {models.count(m) for m in MODELS[:2]} == {1, 2}
    assert res["selection"]["responses"]["repeated_text"] == 1
    with pytest.raises(CumedError, match="2 already queued"):  # nothing left to queue
        push(st, conv.ref, 2, FileBackend, k=4, seed=0, responses_ref=resp.ref)


@pytest.mark.parametrize("bad, field", [
    (lambda r: {**r, "prompt": [{"role": "user", "content": "别的问题"}]}, "field prompt "),
    (lambda r: {**r, "prompt_id": "c-unknown"}, "field prompt_id "),
    (lambda r: {**r, "model": "doctor"}, "field model "),
])
def test_untrusted_responses_are_refused(tmp_path, bad, field):
    st = Store(tmp_path / "store")
    conv = st.publish("conv", conversations_table(FULL), kind="conversations")
    rows = [response_row(pid, m) for pid in FULL for m in MODELS]
    rows[4] = bad(rows[4])
    resp = st.publish("conv-responses", responses_table(rows), kind="responses")
    p = subprocess.run([sys.executable, "-c", "from cumed.cli import main; main()", "rank", "push", conv.ref,
                        "--k", "4", "--responses", resp.ref, "--store", str(st.root)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and p.stderr.startswith("error: ")
    assert f"prompt_id '{rows[4]['prompt_id']}'" in p.stderr and field in p.stderr, p.stderr
    assert not (st.root / "_ranking" / "conv" / "ledger.json").exists()  # nothing queued
