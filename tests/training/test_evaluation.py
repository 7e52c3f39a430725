"""Evaluation: pairwise judge over real HTTP (a local OpenAI-compatible server), cache, retries,
invalid items, reference metrics, benchmark loaders, the CLI and the HTML report."""

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from training.evaluation import benchmarks as B
from training.evaluation.judge import (DIMENSIONS, Judge, JudgeCache, OpenAIBackend, cache_key, combine,
                                       parse_verdict, run_judge)
from training.evaluation.metrics import corpus_bleu, distinct_n, lcs_dp, lcs_length, rouge_l

GOOD = "建议尽快到泌尿外科就诊，做尿常规和B超检查。"


def verdict(x):
    return json.dumps({d: x for d in DIMENSIONS})


def first_always(user, n):
    return verdict("A")


def prefers_good(user, n):
    """Prefers the answer that contains GOOD, whichever position it is in."""
    a_part, b_part = user.split("回答B / Answer B:")
    return verdict("A" if GOOD in a_part else "B" if GOOD in b_part else "tie")


class Server:
    """OpenAI-compatible POST /v1/chat/completions on 127.0.0.1; ``policy(user_text, n)`` returns
    the reply content, or ("status", code) / ("sleep", s, content) / ("raw", body bytes)."""

    def __init__(self, policy):
        self.policy, self.requests, self.lock = policy, 0, threading.Lock()
        srv = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.path.endswith("/chat/completions"), self.path
                with srv.lock:
                    srv.requests += 1
                    n = srv.requests
                user = body["messages"][-1]["content"]
                r = srv.policy(user, n)
                if isinstance(r, tuple) and r[0] == "sleep":
                    time.sleep(r[1])
                    r = r[2]
                if isinstance(r, tuple) and r[0] == "status":
                    return self._send(r[1], b'{"error": {"message": "boom"}}')
                if isinstance(r, tuple) and r[0] == "raw":
                    return self._send(200, r[1])
                out = {"id": f"c{n}", "object": "chat.completion", "created": 0, "model": body["model"],
                       "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": r}}],
                       "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}
                self._send(200, json.dumps(out).encode())

            def _send(self, code, data):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    made = []

    def make(policy):
        made.append(Server(policy))
        return made[-1]

    yield make
    for s in made:
        s.close()


def bench(n=6):
    return [B.BenchItem(str(i), f"医生您好，我第{i}天尿频尿急，怎么办？", None, True) for i in range(n)]


def make_judge(srv, tmp_path, **kw):
    be = OpenAIBackend(base_url=srv.url, model="judge-x", api_key="sk-secret-123", timeout=kw.pop("timeout", 5.0))
    return Judge(be, JudgeCache(tmp_path / "cache"), backoff=0.01, **kw)


def answers(items, good_for):
    a = {it.id: (GOOD if good_for == "A" else "多喝水。") + f"#{it.id}" for it in items}
    b = {it.id: (GOOD if good_for == "B" else "多喝水。") + f"#{it.id}" for it in items}
    return a, b


# --------------------------------------------------------------------------- judge over HTTP


def test_position_biased_judge_gives_only_draws(server, tmp_path):
    srv = server(first_always)
    items = bench()
    a, b = answers(items, "A")
    res = run_judge(make_judge(srv, tmp_path), items, a, b, workers=2)
    for d in DIMENSIONS:
        assert res["summary"][d] == {"win": 0, "draw": 6, "loss": 0}
    assert srv.requests == 12 and res["stats"]["requests"] == 12  # both orders
    assert res["invalid"] == []


@pytest.mark.parametrize("good", ["A", "B"])
def test_content_preferring_judge_wins_in_both_orders(server, tmp_path, good):
    srv = server(prefers_good)
    items = bench()
    a, b = answers(items, good)
    j = make_judge(srv, tmp_path, price_prompt_1k=0.5, price_completion_1k=1.5)
    res = run_judge(j, items, a, b, workers=1)
    want = {"win": 6, "draw": 0, "loss": 0} if good == "A" else {"win": 0, "draw": 0, "loss": 6}
    for d in DIMENSIONS:
        assert res["summary"][d] == want
    assert res["usage"]["prompt_tokens"] == 1200 and res["usage"]["completion_tokens"] == 120
    assert res["usage"]["cost"] == pytest.approx(12 * (0.1 * 0.5 + 0.01 * 1.5))
    assert "sk-secret-123" not in json.dumps(res) and "sk-secret-123" not in repr(j.backend)


def test_cache_second_run_makes_zero_requests(server, tmp_path):
    srv = server(prefers_good)
    items = bench(4)
    a, b = answers(items, "A")
    r1 = run_judge(make_judge(srv, tmp_path), items, a, b)
    assert srv.requests == 8
    r2 = run_judge(make_judge(srv, tmp_path), items, a, b)
    assert srv.requests == 8 and r2["stats"]["requests"] == 0 and r2["stats"]["cache_hits"] == 8
    assert r2["summary"] == r1["summary"]
    # the key depends on the order, the judge model and the rubric version
    assert cache_key("q", "x", "y", "m") != cache_key("q", "y", "x", "m") != cache_key("q", "x", "y", "m2")
    assert cache_key("q", "x", "y", "m", "v1") != cache_key("q", "x", "y", "m", "v2")


def test_transient_errors_are_retried(server, tmp_path):
    faults = {1: ("status", 500), 2: ("sleep", 1.0, verdict("A")), 3: ("raw", b"{not json"), 4: ("status", 503)}

    def policy(user, n):
        return faults.get(n) or prefers_good(user, n)

    srv = server(policy)
    items = bench(1)
    a, b = answers(items, "A")
    res = run_judge(make_judge(srv, tmp_path, timeout=0.4), items, a, b, workers=1)
    assert res["invalid"] == [] and res["summary"]["relevance"]["win"] == 1
    assert res["stats"]["transient_errors"] == 4 and srv.requests == 6


def test_failures_are_reported_never_dropped(server, tmp_path):
    """Item 1 always gets a 500, item 2 always an unparsable reply, item 3 parses after one bad reply;
    item 4 has no answer from B. Every id is in the result."""
    seen = {}

    def policy(user, n):
        if "第1天" in user:
            return ("status", 500)
        if "第2天" in user:
            return "I think the first one is better."
        if "第3天" in user:
            seen[3] = seen.get(3, 0) + 1
            if seen[3] == 1:
                return "```json\n{\"relevance\": \"A\", \"expertise\": \n```"
        return prefers_good(user, n)

    srv = server(policy)
    items = bench(5)
    a, b = answers(items, "A")
    del b["4"]
    j = make_judge(srv, tmp_path, retries=2, parse_retries=1)
    res = run_judge(j, items, a, b, workers=2)
    ids = {r["id"] for r in res["items"]}
    assert ids == {"0", "1", "2", "3", "4"}
    bad = {x["id"]: x["reason"] for x in res["invalid"]}
    assert set(bad) == {"1", "2", "4"}
    assert "3 attempts" in bad["1"] and "unparsable" in bad["2"] and "no answer from B" in bad["4"]
    assert res["summary"]["n_valid"] == 2 and res["summary"]["expertise"]["win"] == 2
    assert res["stats"]["unparsable_replies"] == 3  # 2 for item 2, 1 for item 3
    # invalid ones are not cached: a re-run asks again for them only
    before = srv.requests
    res2 = run_judge(make_judge(srv, tmp_path, retries=0, parse_retries=0), items, a, b)
    assert srv.requests - before == 2 and res2["stats"]["cache_hits"] == 4


def test_parse_and_combine():
    assert parse_verdict('好的。\n```json\n{"Relevance": "a", "expertise": "Tie", "experience": "B"}\n```') == \
        {"relevance": "A", "expertise": "tie", "experience": "B"}
    assert parse_verdict('{"相关性": "A", "专业性": "平局", "体验": "回答B"}') == \
        {"relevance": "A", "expertise": "tie", "experience": "B"}
    assert parse_verdict('{"relevance": "A"}') is None and parse_verdict("A is better") is None
    assert parse_verdict('{"relevance": "C", "expertise": "A", "experience": "A"}') is None
    ab = {"relevance": "A", "expertise": "A", "experience": "tie"}
    ba = {"relevance": "B", "expertise": "A", "experience": "B"}  # B/A order: "B" means answer A
    assert combine(ab, ba) == {"relevance": "A", "expertise": "draw", "experience": "draw"}
    assert combine({d: "tie" for d in DIMENSIONS}, {d: "tie" for d in DIMENSIONS}) == {d: "draw" for d in DIMENSIONS}
    assert combine({d: "B" for d in DIMENSIONS}, {d: "A" for d in DIMENSIONS}) == {d: "B" for d in DIMENSIONS}


def test_local_transformers_backend_plumbing(tmp_path):
    """A tiny random LLaMA answers garbage: the plumbing runs and the item is reported invalid."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from training.evaluation.judge import TransformersBackend
    from training.tokenizer import train_tokenizer

    tok_dir = tmp_path / "m"
    train_tokenizer([GOOD, "多喝水。", "医生您好，我尿频尿急，怎么办？"] * 20, 300, tok_dir)
    from training.tokenizer import load_tokenizer

    tok = load_tokenizer(tok_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=2, intermediate_size=64, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(tok_dir)
    be = TransformersBackend(tok_dir, max_new_tokens=4, device="cpu")
    text, usage = be.complete([{"role": "user", "content": "你好"}])
    assert isinstance(text, str) and usage["completion_tokens"] <= 4 and usage["prompt_tokens"] > 0
    res = run_judge(Judge(be, None, parse_retries=0), bench(1), *answers(bench(1), "A"), workers=1)
    assert [r["id"] for r in res["items"]] == ["0"] and len(res["invalid"]) == 1


# --------------------------------------------------------------------------- metrics


def test_lcs_matches_dp():
    rng = random.Random(0)
    for _ in range(200):
        x = "".join(rng.choice("尿频急痛ab") for _ in range(rng.randint(0, 80)))
        y = "".join(rng.choice("尿频急痛ac") for _ in range(rng.randint(0, 80)))
        assert lcs_length(x, y) == lcs_dp(x, y)


def test_rouge_l_hand_computed():
    # hyp 我爱北京 / ref 我爱天安门北京: LCS 我爱北京 = 4; P = 4/4, R = 4/7, F = 2*1*(4/7)/(1+4/7) = 8/11
    r = rouge_l("我 爱北京", "我爱天安门北京")
    assert r["p"] == 1.0 and r["r"] == pytest.approx(4 / 7) and r["f"] == pytest.approx(8 / 11)
    assert rouge_l("", "abc") == {"p": 0.0, "r": 0.0, "f": 0.0}


def test_bleu_matches_sacrebleu_and_hand_computed():
    import math

    import sacrebleu

    hyps, refs = ["我爱北京天安门", "前列腺炎需要抗感染治疗"], ["我爱北京天安门", "前列腺炎应抗感染治疗"]
    want = sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh").score
    assert corpus_bleu(hyps, refs) == pytest.approx(want)
    # by hand, one sentence: hyp ABCDE vs ref ABCDF (characters): p1 4/5, p2 3/4, p3 2/3, p4 1/2, BP 1
    hand = 100 * math.exp((math.log(4 / 5) + math.log(3 / 4) + math.log(2 / 3) + math.log(1 / 2)) / 4)
    assert corpus_bleu(["尿频尿急痛"], ["尿频尿急多"]) == pytest.approx(hand)
    assert corpus_bleu(["我爱北京"], ["我爱北京"]) == pytest.approx(100.0)


def test_distinct():
    assert distinct_n(["aab"], 1) == pytest.approx(2 / 3)
    assert distinct_n(["abab"], 2) == pytest.approx(2 / 3)
    assert distinct_n([""], 2) == 0.0


# --------------------------------------------------------------------------- benchmarks, CLI, report


def fake_raw(tmp_path) -> Path:
    raw = tmp_path / "raw"
    p = raw / "Zhongjing_CMtMedQA/data/huatuo26M_test.json"
    p.parent.mkdir(parents=True)
    rows = [{"id": "", "instruction": [q], "input": "", "output": [a]} for q, a in
            [("前列腺炎怎么治？", "建议抗感染治疗。"), ("感冒发烧怎么办？", "多喝水，休息。"), ("膀胱结石要手术吗？", "看大小。")]]
    p.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return raw


def test_benchmark_loader_and_answers(tmp_path):
    items = B.load_benchmark("huatuo26m_test", fake_raw(tmp_path))
    assert [it.id for it in items] == ["0", "1", "2"] and [it.urology for it in items] == [True, False, True]
    assert items[0].reference == "建议抗感染治疗。"
    assert [it.id for it in B.load_benchmark("huatuo26m_test", fake_raw(tmp_path / "x"), "urology")] == ["0", "2"]
    f = tmp_path / "a.jsonl"
    f.write_text('{"id": 0, "answer": "x"}\n\n{"id": "1", "answer": "y"}\n', encoding="utf-8")
    assert B.load_answers(f) == {"0": "x", "1": "y"}
    f.write_text('{"id": 0, "answer": "x"}\n{"id": 0, "answer": "y"}\n', encoding="utf-8")
    with pytest.raises(B.CumedError, match="twice"):
        B.load_answers(f)


REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "raw"


@pytest.mark.skipif(not (REAL / "DISC_MedLLM_eval").is_dir(), reason="raw data not present")
def test_real_benchmarks_load():
    h = B.load_benchmark("huatuo26m_test", REAL)
    assert len(h) == 6000 and h[0].id == "0" and h[-1].id == "5999" and all(it.reference for it in h[:50])
    assert 0 < len([it for it in h if it.urology]) < 6000
    assert len(B.load_benchmark("cmb_clin", REAL)) == 73
    d = B.load_benchmark("disc_eval", REAL)
    assert len(d) == 240 and d[0].id.startswith("cmd/") and d[-1].id.startswith("cmid/")


def test_cli_judge_metrics_report(server, tmp_path, monkeypatch, capsys):
    from cumed.cli import main

    srv = server(prefers_good)
    raw = fake_raw(tmp_path)
    a, b = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    a.write_text("".join(json.dumps({"id": str(i), "answer": GOOD}, ensure_ascii=False) + "\n" for i in range(3)), encoding="utf-8")
    b.write_text("".join(json.dumps({"id": str(i), "answer": "多喝水。"}, ensure_ascii=False) + "\n" for i in range(3)), encoding="utf-8")
    monkeypatch.setenv("CUMED_JUDGE_BASE_URL", srv.url)
    monkeypatch.setenv("CUMED_JUDGE_MODEL", "judge-x")
    monkeypatch.setenv("CUMED_JUDGE_API_KEY", "sk-topsecret")
    args = ["eval", "judge", "--bench", "huatuo26m_test", "--raw", str(raw), "--a", str(a), "--b", str(b),
            "--limit", "2", "--cache-dir", str(tmp_path / "jc"), "--json"]
    main(args)
    res = json.loads(capsys.readouterr().out)
    assert res["model_a"] == "good" and res["n_items"] == 2 and res["summary"]["relevance"]["win"] == 2
    assert srv.requests == 4 and "sk-topsecret" not in json.dumps(res)
    main(args)
    assert json.loads(capsys.readouterr().out)["stats"]["requests"] == 0 and srv.requests == 4
    (tmp_path / "res.json").write_text(json.dumps(res), encoding="utf-8")

    main(["eval", "metrics", "--bench", "huatuo26m_test", "--raw", str(raw), "--answers", str(a), "--answers", str(b), "--json"])
    m = json.loads(capsys.readouterr().out)
    assert set(m["metrics"]) == {"good", "bad"} and m["metrics"]["bad"]["all"]["n"] == 3
    assert m["metrics"]["good"]["urology"]["n"] == 2 and m["metrics"]["bad"]["all"]["bleu"] is not None

    html = tmp_path / "out" / "report.html"
    main(["eval", "report", str(tmp_path / "res.json"), "--out", str(html), "--json"])
    text = html.read_text(encoding="utf-8")
    assert "data:image/png;base64," in text and "relevance" in text

    with pytest.raises(SystemExit):
        main(["eval", "judge", "--bench", "nope", "--raw", str(raw), "--a", str(a), "--b", str(b)])
    assert "unknown benchmark" in capsys.readouterr().err


def test_compare_checkpoints_scores_child_and_parent_on_the_same_prompts(toy_tokenizer, tmp_path, monkeypatch):
    """Before/after: two checkpoints (different seeds) answer the same benchmark items."""
    import json as _json

    from tests.training.conftest import tiny_cfg
    from training.evaluation.compare import compare_checkpoints
    from training.model import build_model

    tok, tok_dir = toy_tokenizer
    dirs = []
    for seed in (1, 2):
        model = build_model(tiny_cfg("sft", seed=seed), tok)
        d = tmp_path / f"m{seed}"
        model.save_pretrained(d)
        dirs.append(d)
    raw = tmp_path / "raw" / "Zhongjing_CMtMedQA" / "data"
    raw.mkdir(parents=True)
    items = [{"id": "", "instruction": [f"前列腺炎第{i}问怎么办"], "input": "", "output": [f"多喝水，规律作息，第{i}条建议"]}
             for i in range(5)]
    (raw / "huatuo26M_test.json").write_text(_json.dumps(items, ensure_ascii=False), encoding="utf-8")
    res = compare_checkpoints(dirs[0], dirs[1], tok_dir, tmp_path / "raw", n=3, max_new_tokens=6, names=("after", "before"))
    assert res["n"] == 3 and set(res["metrics"]) == {"after", "before"}
    for name in ("after", "before"):
        m = res["metrics"][name]["all"]
        assert m["n"] == 3 and m["missing"] == 0 and m["n_ref"] == 3 and m["rouge_l"] is not None
        assert sorted(res["answers"][name]) == sorted(res["answers"]["after"])
    # different weights, same prompts: the answers differ somewhere
    assert res["answers"]["after"] != res["answers"]["before"]
