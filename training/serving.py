"""A small OpenAI-compatible chat server for a local Hugging Face checkpoint (``cumed serve``).

For local checkpoints (a run's ``final/``) and for tests: real tokens from a real ``generate``,
one request at a time on the model. Teams serving for throughput use vLLM or SGLang; ``cumed
generate`` talks to both the same way.

Endpoints: ``POST /v1/chat/completions`` (``messages``, ``max_tokens``, ``temperature``,
``top_p``, ``seed``, ``n`` = 1), ``GET /v1/models``, ``GET /health``. With an API key (read from
an environment variable named at start, never from the command line) every ``/v1`` call needs
``Authorization: Bearer <key>``. Every completion request is appended to a JSON-lines request log
(time, request fingerprint, status, token counts; never a header or the key) so a caller can
prove which requests it made, and how often.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cumed.errors import CumedError

MAX_BODY = 8 << 20  # a chat request larger than this is refused (413)


def request_fingerprint(messages: list, params: dict) -> str:
    """sha256 of what decides a completion: the messages and the sampling params (seed included)."""
    payload = {"messages": messages, **{k: params.get(k) for k in ("max_tokens", "temperature", "top_p", "seed")}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ChatModel:
    """Tokenizer (with a chat template) + causal LM from one checkpoint folder; ``complete`` is
    serialised by a lock (one model, one forward pass at a time)."""

    def __init__(self, folder: str | Path):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise CumedError(f"{folder} has no config.json; give a Hugging Face checkpoint folder (a run's final/)")
        self.tok = AutoTokenizer.from_pretrained(str(folder))
        if not self.tok.chat_template:
            raise CumedError(f"the tokenizer in {folder} has no chat template; save the run's tokenizer beside the model")
        self.model = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
        self.max_context = int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)
        self._torch = torch
        self._lock = threading.Lock()

    def complete(self, messages: list[dict], max_tokens: int, temperature: float, top_p: float, seed: int) -> dict:
        torch = self._torch
        text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = self.tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        n_in = int(ids.shape[1])
        max_new = max(0, min(max_tokens, self.max_context - n_in))
        if max_new == 0:
            raise ValueError(f"prompt of {n_in} tokens leaves no room in the {self.max_context}-token context")
        sample = temperature > 0
        kw = {"do_sample": sample, "max_new_tokens": max_new, "eos_token_id": self.tok.eos_token_id,
              "pad_token_id": self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id}
        if sample:
            kw.update(temperature=temperature, top_p=top_p, top_k=0)
        with self._lock, torch.no_grad():
            torch.manual_seed(int(seed))
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), **kw)
        new = out[0, n_in:].tolist()
        stopped = bool(new) and new[-1] == self.tok.eos_token_id
        return {"content": self.tok.decode(new, skip_special_tokens=True),
                "finish_reason": "stop" if stopped else "length",
                "prompt_tokens": n_in, "completion_tokens": len(new)}


class _Handler(BaseHTTPRequestHandler):
    server: "ChatServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # the request log below is the record; no header is ever printed
        pass

    # ---- plumbing

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._send(status, {"error": {"message": message, "type": kind}})

    def _authorized(self) -> bool:
        key = self.server.api_key
        if key is None:
            return True
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            return True
        self._error(401, "missing or wrong API key", "authentication_error")
        return False

    def _client_gone(self) -> bool:
        """True when the caller hung up while we waited (it was killed): its answer would be lost."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    # ---- routes

    def do_GET(self):
        if self.path == "/health":
            return self._send(200, {"status": "ok"})
        if self.path.rstrip("/") == "/v1/models":
            if self._authorized():
                self._send(200, {"object": "list", "data": [{"id": self.server.model_name, "object": "model",
                                                              "owned_by": "cumed"}]})
            return None
        self._error(404, f"no route {self.path}")

    def do_POST(self):
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._error(404, f"no route {self.path}")
        if not self._authorized():
            return None
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._error(413, f"request body over {MAX_BODY} bytes")
        try:
            req = json.loads(self.rfile.read(length) or b"{}")
            messages, params = _parse_request(req)
        except (ValueError, TypeError) as e:
            return self._error(400, str(e))
        fp = request_fingerprint(messages, params)
        if self.server.delay:
            time.sleep(self.server.delay)
            if self._client_gone():
                self.server.log({"fingerprint": fp, "status": "abandoned"})
                return None
        try:
            out = self.server.chat.complete(messages, **params)
        except ValueError as e:
            return self._error(400, str(e))
        usage = {"prompt_tokens": out["prompt_tokens"], "completion_tokens": out["completion_tokens"],
                 "total_tokens": out["prompt_tokens"] + out["completion_tokens"]}
        self.server.log({"fingerprint": fp, "status": "answered", **usage})
        self._send(200, {
            "id": f"chatcmpl-{fp[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": self.server.model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": out["content"]},
                         "finish_reason": out["finish_reason"]}],
            "usage": usage,
        })


def _parse_request(req) -> tuple[list[dict], dict]:
    if not isinstance(req, dict):
        raise ValueError("the body must be a JSON object")
    messages = req.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages: a non-empty list of {role, content} is required")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            raise ValueError(f"messages[{i}]: needs role system|user|assistant and a string content")
        clean.append({"role": m["role"], "content": m["content"]})
    if req.get("n", 1) != 1:
        raise ValueError("n: only n=1 is served; send one request per sample")
    max_tokens = req.get("max_tokens", req.get("max_completion_tokens", 256))
    temperature = req.get("temperature", 1.0)
    top_p = req.get("top_p", 1.0)
    seed = req.get("seed", 0)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= 32768:
        raise ValueError("max_tokens: an integer in 1..32768")
    if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise ValueError("temperature: a number in 0..2")
    if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise ValueError("top_p: a number in (0, 1]")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError("seed: an integer")
    return clean, {"max_tokens": max_tokens, "temperature": float(temperature), "top_p": float(top_p), "seed": seed}


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, chat: ChatModel, host: str, port: int, model_name: str, api_key: str | None,
                 request_log: Path | None, delay: float = 0.0):
        super().__init__((host, port), _Handler)
        self.chat, self.model_name, self.api_key, self.delay = chat, model_name, api_key, delay
        self.request_log = request_log
        self._log_lock = threading.Lock()

    def log(self, entry: dict) -> None:
        if self.request_log is None:
            return
        line = json.dumps({"time": round(time.time(), 3), **entry}) + "\n"
        with self._log_lock, open(self.request_log, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()


def make_server(folder: str | Path, host: str = "127.0.0.1", port: int = 0, name: str | None = None,
                api_key_env: str | None = None, request_log: str | Path | None = None,
                delay: float = 0.0) -> ChatServer:
    """Load the checkpoint and bind the port (0 = a free one); ``serve_forever`` starts serving."""
    key = None
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise CumedError(f"--api-key-env {api_key_env}: the variable is empty or unset; export it first")
    if host not in ("127.0.0.1", "localhost", "::1") and key is None:
        raise CumedError(f"--host {host} exposes the model beyond this machine; give --api-key-env VAR too")
    chat = ChatModel(folder)
    log = Path(request_log) if request_log else None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    return ChatServer(chat, host, port, name or Path(folder).resolve().name, key, log, delay)
