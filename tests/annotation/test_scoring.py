"""``cumed annotate``: model-scored labels through the generator's runner, against a scripted
OpenAI-compatible server (rubric JSON decided by the document text) and the tiny real ``cumed serve``
model (which does not follow the JSON format: every reply is a counted failure); ``quality train
--labels`` learning from the published labels."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pytest

from annotation.scoring.replies import BadScore, parse_score
from annotation.scoring.rubrics import QUALITY, RELEVANCE
from annotation.scoring.sampling import stratified_sample
from cumed.store import Store

CLI = [sys.executable, "-c", "from cumed.cli import main; main()"]
GOOD = ["尿频尿急伴排尿困难，多见于前列腺增生，建议泌尿外科就诊，行B超和尿常规检查。",
        "肾结石患者应多饮水，每日尿量保持在两千毫升以上，绞痛发作时可使用解痉止痛药物。",
        "膀胱炎常见症状为尿痛、尿急，确诊后遵医嘱使用抗生素，疗程结束后复查尿常规。",
        "前列腺特异抗原升高需结合直肠指检与磁共振检查判断，必要时行穿刺活检明确诊断。"]
JUNK = ["限时促销！点击购买壮阳神药，三天见效，包邮到家，扫码领券立减五十元。",
        "全网最低价促销，关注公众号抽奖送手机，转发朋友圈即可参与活动。",
        "促销广告：祖传秘方包治百病，无效退款，请加微信咨询客服购买。"]


def corpus() -> pa.Table:
    rows = []
    for i in range(40):
        rows.append({"id": f"good-{i:03d}", "text": f"{GOOD[i % 4]}病例{i}。", "source": "toyhom", "category": "qa"})
    for i in range(40):
        rows.append({"id": f"junk-{i:03d}", "text": f"{JUNK[i % 3]}编号{i}。", "source": "web", "category": "ads"})
    for i in range(3):
        rows.append({"id": f"book-{i:03d}", "text": f"{GOOD[i]}（教材第{i}章）", "source": "book", "category": "textbook"})
    rows.append({"id": "odd-000", "text": "BROKEN 这段让模型答非所问。", "source": "book", "category": "textbook"})
    for r in rows:
        r.update(department="", n_chars=len(r["text"]), metadata="{}")
    return pa.Table.from_pylist(rows)


class Scripted(BaseHTTPRequestHandler):
    """A model that follows the rubric: ads score 1, medical text 4, a BROKEN text gets prose (no JSON)."""

    calls: list = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        self._reply({"data": [{"id": "scripted"}]})

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        doc = req["messages"][-1]["content"]
        type(self).calls.append(doc)
        assert req["messages"][0]["role"] == "system" and "5 分制" in req["messages"][0]["content"]
        if "BROKEN" in doc:
            content = "这段文字很难评价，我觉得还可以。"
        elif "促销" in doc:
            content = '```json\n{"score": 1, "reason": "商业广告，无医学价值"}\n```'
        else:
            content = '评分如下：{"score": 4, "reason": "泌尿科诊疗建议，准确清晰"}'
        self._reply({"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": len(doc), "completion_tokens": 20}})

    def _reply(self, obj):
        body = json.dumps(obj, ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def scripted():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("scoring")
    st = Store(root / "store")
    ref = st.publish("corpus", corpus()).ref
    return {"root": root, "store": st, "ref": ref}


def cli(world, *args, check=0):
    env = {**os.environ, "CUMED_CACHE": str(world["root"] / "cache"), "CUMED_STORE": str(world["root"] / "store"),
           "OPENAI_API_KEY": "sk-test", "OMP_NUM_THREADS": "1"}
    p = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == check, p.stderr[-3000:]
    return json.loads(p.stdout) if check == 0 else p


def test_annotate_publishes_scored_labels_per_stratum(world, scripted):
    before = len(Scripted.calls)
    rep = cli(world, "annotate", world["ref"], "--rubric", "quality", "--model", "scripted", "--base-url", scripted,
              "--per-source", "30", "--json")
    # strata: toyhom/qa 40 -> 30, web/ads 40 -> 30, book/textbook 4 -> 4; odd-000 answers prose
    assert rep["strata"] == {"book/textbook": {"sampled": 4, "scored": 3}, "toyhom/qa": {"sampled": 30, "scored": 30},
                             "web/ads": {"sampled": 30, "scored": 30}}
    assert rep["sampled"] == 64 and rep["scored"] == 63 and rep["failures"] == 1
    assert rep["requests_sent"] == 64 == len(Scripted.calls) - before
    assert [f["id"] for f in rep["failed"]] == ["odd-000"]
    assert rep["failed"][0]["error"].startswith("reply field score: no JSON object")
    assert rep["keep"] == 33 and rep["discard"] == 30 and rep["rubric"] == "quality-v1"

    dv = world["store"].get(rep["ref"])
    assert dv.ref == "corpus-quality-labels@1" and dv.kind == "labels" and dv.rows == 63
    rows = {r["id"]: r for r in dv.to_arrow().to_pylist()}
    assert all(r["score"] == 1.0 and r["label"] == "discard" and r["reason"] == "商业广告，无医学价值"
               for i, r in rows.items() if i.startswith("junk"))
    assert all(r["score"] == 4.0 and r["label"] == "keep" for i, r in rows.items() if not i.startswith("junk"))
    assert {r["model"] for r in rows.values()} == {"scripted"} and {r["rubric"] for r in rows.values()} == {"quality-v1"}
    lin = dv.manifest["lineage"]
    assert lin["parents"] == [world["ref"]]
    assert lin["models"] == [{"name": "scripted", "server": "endpoint", "endpoint": scripted.removesuffix("/v1")}]
    assert lin["scoring"]["rubric_sha256"] == QUALITY.sha256 and lin["scoring"]["threshold"] == 3.0
    assert lin["scoring"]["sample"] == {"n": None, "per_source": 30, "seed": 0, "strata": "source/category"}

    # the same command again: the work folder is read back, no request, the same version
    again = cli(world, "annotate", world["ref"], "--rubric", "quality", "--model", "scripted", "--base-url", scripted,
                "--per-source", "30", "--json")
    assert again["requests_sent"] == 0 and again["ref"] == rep["ref"] and len(Scripted.calls) - before == 64


def test_quality_train_learns_from_a_labels_version(world, scripted):
    labels = cli(world, "annotate", world["ref"], "--rubric", "quality", "--model", "scripted", "--base-url",
                 scripted, "--per-source", "30", "--json")["ref"]
    res = cli(world, "quality", "train", "--labels", labels, "--no-weak", "--tokenizer", "char",
              "--target-precision", "0.9", "--json")
    assert res["examples"] == 63 and res["sources"] == ["labels:book", "labels:toyhom", "labels:web"]
    assert res["metrics"]["f1"] >= 0.9 and res["metrics"]["at_threshold"]["precision"] >= 0.9
    from curation.quality.artifact import load_artifact

    model, meta = load_artifact(res["model"])
    lin = meta["lineage"]
    assert lin["labels"]["label_versions"][0]["ref"] == labels and lin["labels"]["label_versions"][0]["keep"] == 33
    manifest = json.loads(open(os.path.join(res["model"], "manifest.json"), encoding="utf-8").read())
    assert manifest["lineage"]["parents"] == sorted([labels, world["ref"]])
    assert manifest["lineage"]["annotations"] == [f"labels:{labels}"]
    # the classifier learnt the model's judgement: medical text above, ads below its threshold
    s_good, s_junk = model.score([GOOD[0] + "新病例。", JUNK[0] + "新编号。"])
    assert s_good >= meta["threshold"] > s_junk


def test_n_splits_over_strata_by_size_and_relevance_rubric(world, scripted):
    rep = cli(world, "annotate", world["ref"], "--rubric", "relevance", "--model", "scripted", "--base-url", scripted,
              "--n", "10", "--seed", "3", "--threshold", "2", "--json")
    assert sum(s["sampled"] for s in rep["strata"].values()) == 10 and set(rep["strata"]) == \
        {"book/textbook", "toyhom/qa", "web/ads"}
    dv = world["store"].get(rep["ref"])
    assert dv.name == "corpus-relevance-labels" and {r["rubric"] for r in dv.to_arrow().to_pylist()} == {"relevance-v1"}
    assert dv.manifest["lineage"]["scoring"]["rubric_sha256"] == RELEVANCE.sha256


def test_refusals_name_the_fix(world, scripted):
    p = cli(world, "annotate", world["ref"], "--rubric", "tone", "--model", "m", "--base-url", scripted, check=1)
    assert "--rubric 'tone': use one of quality, relevance" in p.stderr
    p = cli(world, "annotate", world["ref"], "--rubric", "quality", "--model", "m", "--base-url",
            "https://u:sk-1@x.example/v1", check=1)
    assert "api-key-env" in p.stderr and "sk-1" not in p.stderr


# ---- the parts on their own

def test_parse_score_accepts_json_and_names_the_field():
    assert parse_score('{"score": 3, "reason": " 基本 准确 "}') == (3.0, "基本 准确")
    assert parse_score('好的。\n```json\n{"score": 4.5, "reason": "好"}\n```') == (4.5, "好")
    cases = [("", "reply"), ("分数：4分", "score"), ('{"score": 7, "reason": "x"}', "score"),
             ('{"score": "高", "reason": "x"}', "score"), ('{"score": true, "reason": "x"}', "score"),
             ('{"score": 2}', "reason"), ('{"score": 2, "reason": "  "}', "reason"), ('[1, 2]', "score")]
    for text, field in cases:
        with pytest.raises(BadScore) as e:
            parse_score(text)
        assert e.value.field == field, text


def test_stratified_sample_is_seeded_and_per_stratum():
    import pandas as pd

    frame = pd.DataFrame(corpus().select(["id", "source", "category"]).to_pylist())
    a = stratified_sample(frame, per_stratum=2, seed=1)
    assert len(a) == 6 and a == stratified_sample(frame, per_stratum=2, seed=1)
    assert a != stratified_sample(frame, per_stratum=2, seed=2)
    assert set(stratified_sample(frame, per_stratum=2, seed=1)) <= set(stratified_sample(frame, per_stratum=3, seed=1))
    assert len(stratified_sample(frame, n=5, per_stratum=3, seed=1)) == 5


def test_rubric_prompt_cuts_long_documents():
    msgs = QUALITY.messages("尿" * 5000, 200)
    assert msgs[0]["role"] == "system" and "5 分制" in msgs[0]["content"] and '"score"' in msgs[0]["content"]
    assert "已截断，原文共 5000 字" in msgs[1]["content"] and msgs[1]["content"].count("尿") == 200
    assert re.search(r"加 1 分", RELEVANCE.text)


@pytest.fixture(scope="module")
def tiny_server(world):
    """``cumed serve`` hosting a tiny random LLaMA (as tests/training/test_generate.py): real replies, no rubric JSON."""
    import time
    import urllib.request

    from tests.tiny_chat_model import tiny_chat_model

    model = tiny_chat_model(GOOD + JUNK, world["root"] / "tiny", 300, max_positions=2048)
    proc = subprocess.Popen([*CLI, "serve", str(model), "--port", "0", "--name", "tiny", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        url = json.loads(proc.stdout.readline())["url"]
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_model_without_the_json_format_publishes_nothing(world, tiny_server):
    names = set(world["store"].names())
    p = cli(world, "annotate", world["ref"], "--rubric", "quality", "--model", "tiny", "--base-url", tiny_server,
            "--per-source", "2", "--max-tokens", "8", "--max-chars", "100", "--name", "tiny-labels", check=1)
    err = p.stderr.strip().splitlines()[-1]
    # every reply is real text without a score: each is a counted failure, and the message names documents
    assert err.startswith("error: no document of corpus@1 got a valid quality score from model tiny: all 6 failed")
    assert "nothing published" in err and re.search(r"(book|good|junk)-\d{3}", err)
    assert set(world["store"].names()) == names  # no labels version
    # every failure, by document id, is in the file the error names
    failures = json.loads(open(err.rsplit(": ", 1)[1].rstrip(")"), encoding="utf-8").read())
    assert sorted(f["id"][:4] for f in failures) == ["book", "book", "good", "good", "junk", "junk"]
    assert all(f["error"].startswith("reply field score") for f in failures), failures
