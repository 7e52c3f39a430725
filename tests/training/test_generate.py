"""``cumed generate`` against a real OpenAI-compatible server (``cumed serve``) hosting a tiny LLaMA
built from a config: real generation and token counts, reached through datatrove's
``InferenceRunner`` in endpoint mode. Resume after SIGKILL is proven by the server's request log
(every answered fingerprint once); the API key is looked for in every file the runs leave."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cumed.errors import CumedError
from cumed.generation.prompts import context
from cumed.generation.replies import BadReply, check_reply
from cumed.generation.targets import Target
from cumed.store import Store
from tests.training.conftest import conversations

KEY = "sk-cumed-test-" + os.urandom(8).hex()
CLI = [sys.executable, "-c", "from cumed.cli import main; main()"]
DELAY = 0.6  # the server waits this long before each answer: a SIGKILL lands inside a request, not between two


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store with a conversations version, a tiny checkpoint, and `cumed serve` on a free port with a key."""
    from tests.tiny_chat_model import tiny_chat_model

    root = tmp_path_factory.mktemp("gen")
    st = Store(root / "store")
    ref = st.publish("toy-sft", conversations(), kind="conversations").ref
    texts = [m["content"] for r in conversations().to_pylist() for m in r["messages"]]
    model = tiny_chat_model(texts, root / "model", 400)
    log = root / "requests.jsonl"
    env = {**os.environ, "CUMED_TEST_SERVER_KEY": KEY, "OMP_NUM_THREADS": "1"}
    server_err = root / "server.stderr"
    with open(server_err, "w") as errf:
        proc = subprocess.Popen([*CLI, "serve", str(model), "--port", "0", "--name", "tiny", "--json",
                                 "--api-key-env", "CUMED_TEST_SERVER_KEY", "--request-log", str(log),
                                 "--delay", str(DELAY)], stdout=subprocess.PIPE, stderr=errf, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line, server_err.read_text()
        url = json.loads(line)["url"]
        import urllib.request

        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        yield {"root": root, "store": st, "ref": ref, "url": url, "log": log, "server_err": server_err,
               "cache": root / "cache", "runs": []}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _env(world, key=KEY):
    return {**os.environ, "OPENAI_API_KEY": key, "CUMED_CACHE": str(world["cache"]),
            "CUMED_STORE": str(world["root"] / "store"), "OMP_NUM_THREADS": "1"}


def _args(world, *extra):
    return ["generate", world["ref"], "--model", "tiny", "--base-url", world["url"], "--k", "2", "--n", "5",
            "--max-tokens", "12", "--json", *extra]


def generate(world, *extra, check=0):
    p = subprocess.run([*CLI, *_args(world, *extra)], capture_output=True, text=True, env=_env(world), timeout=300)
    world["runs"].append(p.stdout + p.stderr)
    assert p.returncode == check, p.stderr[-3000:]
    return json.loads(p.stdout) if check == 0 else p


def answered(world) -> list[str]:
    if not world["log"].exists():
        return []
    return [e["fingerprint"] for e in map(json.loads, world["log"].read_text().splitlines())
            if e["status"] == "answered"]


def test_generate_publishes_real_responses_and_reruns_without_requests(world):
    before = len(answered(world))
    rep = generate(world, "--price-in", "0.5", "--price-out", "2")
    sent = answered(world)[before:]
    assert rep["rows"] == 10 and rep["requests_sent"] == 10 and len(sent) == 10 and len(set(sent)) == 10
    assert rep["failures"] == [] and rep["prompt_tokens"] > 0 and rep["completion_tokens"] > 0
    assert rep["cost_usd"] == pytest.approx((rep["prompt_tokens"] * 0.5 + rep["completion_tokens"] * 2) / 1e6)

    dv = world["store"].get(rep["ref"])
    assert dv.kind == "responses" and dv.rows == 10
    rows = dv.to_arrow().to_pylist()
    convs = {r["id"]: r["messages"] for r in conversations().to_pylist()}
    for r in rows:
        full = convs[r["prompt_id"]]
        last = max(i for i, m in enumerate(full) if m["role"] == "assistant")
        assert r["prompt"] == full[:last] and r["prompt"][-1]["role"] == "user"
        assert r["model"] == "tiny" and r["sample"] in (0, 1) and isinstance(r["response"], str)
        assert 0 < r["prompt_tokens"] and 0 < r["completion_tokens"] <= 12
        assert r["finish_reason"] in ("stop", "length")
        assert json.loads(r["params"]) == {"max_tokens": 12, "temperature": 0.7, "top_p": 0.95, "seed": r["sample"]}
    assert len({r["response_id"] for r in rows}) == 10 and sum(r["prompt_tokens"] for r in rows) == rep["prompt_tokens"]
    # conv-000 has a system turn and two exchanges: its prompt keeps the history up to the last answer
    assert [m["role"] for m in next(r for r in rows if r["prompt_id"] == "conv-000")["prompt"]] == \
        ["system", "user", "assistant", "user"]
    lin = dv.manifest["lineage"]
    assert lin["parents"] == [world["ref"]]
    assert lin["models"] == [{"name": "tiny", "server": "endpoint", "endpoint": world["url"].removesuffix("/v1")}]
    assert lin["generation"]["params"] == {"max_tokens": 12, "temperature": 0.7, "top_p": 0.95}
    assert lin["generation"]["k"] == 2 and lin["generation"]["n"] == 5

    # the same command again: no request reaches the server, the same version comes back
    n_log = len(world["log"].read_text().splitlines())
    again = generate(world, "--price-in", "0.5", "--price-out", "2")
    assert len(world["log"].read_text().splitlines()) == n_log
    assert again["ref"] == rep["ref"] and again["requests_sent"] == 0 and again["models"][0]["reused"]


def test_sigkilled_generate_resumes_without_asking_twice(world):
    work = world["cache"] / "kill-work"
    extra = ("--seed", "100", "--concurrency", "1", "--name", "killed", "--work-dir", str(work))
    before = len(answered(world))
    p = subprocess.Popen([*CLI, *_args(world, *extra)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=_env(world), start_new_session=True)

    def stored() -> int:  # samples the client has checkpointed (datatrove's chunk file)
        return sum(len(f.read_text().splitlines()) for f in work.rglob("checkpoints/*/chunk_*.jsonl"))

    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        n = len(answered(world)) - before
        if n >= 3 and stored() >= n:  # every answer so far is stored; the next request waits in the server's delay
            break
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGKILL)  # the whole group: datatrove's manager process dies with it
    out, err = p.communicate()
    world["runs"].append((out + err).decode())
    first = answered(world)[before:]
    assert p.returncode == -signal.SIGKILL
    assert 3 <= len(first) < 10, f"the kill did not land mid-run: {len(first)} of 10 answered"
    _no_key_anywhere(world)  # also while the runner's request cache and checkpoints exist

    rep = generate(world, *extra)
    second = answered(world)[before + len(first):]
    assert rep["rows"] == 10 and rep["failures"] == []
    assert len(first) + len(second) == 10 and len(second) < 10
    assert len(set(first + second)) == 10, "a request was answered twice"
    assert rep["requests_sent"] == len(second)
    print(f"killed after {len(first)} of 10 answered; the resumed run sent {len(second)}")
    abandoned = [e for e in map(json.loads, world["log"].read_text().splitlines()) if e["status"] == "abandoned"]
    assert len(abandoned) <= 1  # the request in flight at the kill, never answered, then asked once more


class _Fake(BaseHTTPRequestHandler):
    """A model endpoint that answers sample 0 well and sample 1 with a broken reply."""

    bad = [b'{"choices": []}',
           json.dumps({"choices": [{"message": {"content": 42}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 1}}).encode(),
           json.dumps({"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 10 ** 12, "completion_tokens": 1}}).encode(),
           b"<html>502 bad gateway</html>"]
    calls: list = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        self._reply(b'{"data": []}')

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(req["seed"])
        if req["seed"] % 2 == 0:
            body = json.dumps({"choices": [{"message": {"content": "多喝水"}, "finish_reason": "stop"}],
                               "usage": {"prompt_tokens": 7, "completion_tokens": 3}}).encode()
        else:
            body = self.bad[(len(self.calls) - 1) % len(self.bad)]
        self._reply(body)

    def _reply(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_bad_replies_are_counted_failures_named_by_prompt(world):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
        args = ["generate", world["ref"], "--model", "fake", "--base-url", url, "--k", "2", "--n", "3", "--json",
                "--name", "fake-responses"]
        run = lambda *x: subprocess.run([*CLI, *args, *x], capture_output=True, text=True, env=_env(world),
                                        timeout=300)
        p = run()
        world["runs"].append(p.stdout + p.stderr)
        assert p.returncode == 0, p.stderr[-3000:]
        rep = json.loads(p.stdout)
        assert rep["rows"] == 3 and len(rep["failures"]) == 3 and rep["requests_sent"] == 6
        assert len(_Fake.calls) == 6  # a bad reply is not retried
        assert sorted(f["prompt_id"] for f in rep["failures"]) == ["conv-000", "conv-001", "conv-002"]
        assert all(f["sample"] == 1 and f["error"].startswith("reply field ") for f in rep["failures"])
        fields = {f["error"].split(":")[0].removeprefix("reply field ") for f in rep["failures"]}
        assert fields <= {"choices", "choices[0].message.content", "usage.prompt_tokens", "body"}
        # rerun: nothing asked again; --retry-failed asks only for the 3 failed samples
        p = run()
        assert p.returncode == 0 and json.loads(p.stdout)["requests_sent"] == 0 and len(_Fake.calls) == 6
        p = run("--retry-failed")
        world["runs"].append(p.stdout + p.stderr)
        assert p.returncode == 0, p.stderr[-3000:]
        assert json.loads(p.stdout)["requests_sent"] == 3 and sorted(_Fake.calls[6:]) == [1, 1, 1]
    finally:
        srv.shutdown()
        srv.server_close()


def test_wrong_key_stops_with_one_line(world):
    p = subprocess.run([*CLI, *_args(world, "--seed", "7", "--name", "wrong-key")], capture_output=True, text=True,
                       env=_env(world, key="sk-wrong"), timeout=300)
    assert p.returncode == 1
    assert "refused the API key (HTTP 401)" in p.stderr and "$OPENAI_API_KEY" in p.stderr
    assert "sk-wrong" not in p.stdout + p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("error: model tiny: "), p.stderr[-1500:]


def test_local_checkpoint_is_served_by_cumed_serve(world):
    p = subprocess.run([*CLI, "generate", world["ref"], "--model-path", str(world["root"] / "model"), "--model", "mine",
                        "--n", "2", "--max-tokens", "6", "--name", "local-responses", "--json"],
                       capture_output=True, text=True, env=_env(world), timeout=300)
    world["runs"].append(p.stdout + p.stderr)
    assert p.returncode == 0, p.stderr[-3000:]
    rep = json.loads(p.stdout)
    assert rep["rows"] == 2 and rep["requests_sent"] == 2 and rep["completion_tokens"] > 0
    lin = world["store"].get(rep["ref"]).manifest["lineage"]
    assert lin["models"] == [{"name": "mine", "server": "local", "path": str(world["root"] / "model")}]


def test_vllm_and_sglang_are_checked_before_any_work(world):
    p = subprocess.run([*CLI, "generate", world["ref"], "--server", "vllm", "--model-path", "some/model"],
                       capture_output=True, text=True, env=_env(world), timeout=300)
    assert p.returncode == 1 and "vllm is not installed" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([*CLI, "generate", world["ref"], "--server", "sglang", "--base-url", "http://x/v1",
                        "--model-path", "m"], capture_output=True, text=True, env=_env(world), timeout=300)
    assert p.returncode == 1 and "leave --base-url out" in p.stderr


def _no_key_anywhere(world):
    hits = [str(f) for base in (world["root"],) for f in base.rglob("*")
            if f.is_file() and KEY.encode() in f.read_bytes()]
    assert not hits, f"the key was written to {hits}"
    assert not [o for o in world["runs"] if KEY in o], "the key was printed by a run"


def test_key_is_nowhere(world):
    # runs after the others in this module: the work folders, the store, the cache, the server's
    # request log and stderr all live under world["root"]
    if not world["runs"]:  # run alone
        generate(world)
    configs = [f.read_text() for f in world["cache"].rglob("executor.json")]
    assert any("OPENAI_API_KEY" in c for c in configs)  # the variable's name is all the config holds
    _no_key_anywhere(world)


# ---- the parts on their own

def test_check_reply_names_the_field():
    ok = {"choices": [{"message": {"content": "好"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 3, "completion_tokens": 2}}
    assert check_reply(json.dumps(ok), 16)["usage"]["total_tokens"] == 5
    cases = [({"choices": None}, "choices"), ({**ok, "usage": None}, "usage"),
             ({**ok, "usage": {"prompt_tokens": -1, "completion_tokens": 2}}, "usage.prompt_tokens"),
             ({**ok, "usage": {"prompt_tokens": 1, "completion_tokens": 99}}, "usage.completion_tokens"),
             ({**ok, "choices": [{"message": {"content": None}, "finish_reason": "stop"}]}, "choices[0].message.content"),
             ({**ok, "choices": [{"message": {"content": "x"}, "finish_reason": 7}]}, "choices[0].finish_reason")]
    for body, field in cases:
        with pytest.raises(BadReply) as e:
            check_reply(json.dumps(body), 16)
        assert e.value.field == field
    with pytest.raises(BadReply, match="body"):
        check_reply(b"<html>", 16)


def test_urls_with_credentials_are_refused_and_lineage_names_the_host_only():
    for url in ("https://user:sk-1@api.example.com/v1", "https://api.example.com/v1?key=sk-1"):
        with pytest.raises(CumedError, match="api-key-env"):
            Target(name="m", url=url)
    t = Target(name="m", url="https://api.example.com:8443/v1/", key_env="X")
    assert t.public() == {"name": "m", "server": "endpoint", "endpoint": "https://api.example.com:8443"}
    with pytest.raises(CumedError, match="--model-path"):
        Target(name="m", server="vllm")
    with pytest.raises(CumedError, match="base-url"):
        Target(name="m", server="sglang", url="http://x/v1", model_path="p")


def test_prompt_is_the_history_before_the_last_answer():
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]
    assert context(msgs) == msgs[:3]
    assert context([{"role": "assistant", "content": "x"}]) is None
