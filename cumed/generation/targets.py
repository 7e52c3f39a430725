"""Which model answers, and where: a ``Target`` per model of one ``cumed generate`` run.

Servers: ``endpoint`` (any OpenAI-compatible URL: DeepSeek, OpenAI, a team's vLLM/SGLang, or
``cumed serve`` started for a local checkpoint), ``vllm`` / ``sglang`` (datatrove starts the
server itself on this GPU node from ``model_path``).

The key rule: the API key is read from the environment variable a target names, at request time,
and is never an attribute of anything that is serialised (datatrove's executor.json, the work
folder, the manifest). URLs carrying credentials (``user:pass@``, a query string) are refused for
the same reason: a URL is written to logs and lineage.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from cumed.errors import CumedError

SERVERS = ("endpoint", "vllm", "sglang")


def check_url(url: str) -> str:
    """The base URL (``http(s)://host[:port]/v1``) without a trailing slash; credentials refused."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as e:
        raise CumedError(f"--base-url {url!r}: {e}; give e.g. http://127.0.0.1:8000/v1") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CumedError(f"--base-url {url!r}: give an http(s) URL with a host, e.g. https://api.deepseek.com/v1")
    if parts.username or parts.password:
        raise CumedError("--base-url carries credentials (user:pass@host); put the key in an environment variable "
                         "and name it with --api-key-env")
    if parts.query or parts.fragment:
        raise CumedError("--base-url has a query string or fragment; give the plain base URL "
                         "(a key belongs in --api-key-env, never in the URL)")
    return url.rstrip("/")


def api_key(env: str | None) -> str | None:
    """The key, from the environment only, at the moment a request needs it."""
    return (os.environ.get(env) or None) if env else None


def host_of(url: str) -> str:
    """``scheme://host[:port]``: what lineage and reports name (no path, user, query)."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.hostname}{f':{p.port}' if p.port else ''}"


@dataclass(frozen=True)
class Target:
    name: str
    server: str = "endpoint"
    url: str | None = None
    model_path: str | None = None
    key_env: str | None = None
    local: bool = False  # an endpoint that ``cumed generate`` started with ``cumed serve`` for model_path
    stamp: str | None = None  # a local checkpoint's file stamp (names, sizes, mtimes): retrained = new answers

    def __post_init__(self):
        if not self.name or any(c.isspace() for c in self.name):
            raise CumedError(f"--model {self.name!r}: give the model's name as the server knows it")
        if self.server not in SERVERS:
            raise CumedError(f"--server {self.server!r}: use one of {', '.join(SERVERS)}")
        if self.server == "endpoint":
            if not self.url:
                raise CumedError(f"--model {self.name}: give --base-url URL (an OpenAI-compatible endpoint), "
                                 "or --model-path DIR to serve a local checkpoint")
            object.__setattr__(self, "url", check_url(self.url))
        else:
            if self.url:
                raise CumedError(f"--server {self.server} starts its own server; leave --base-url out")
            if not self.model_path:
                raise CumedError(f"--server {self.server}: give --model-path (a checkpoint folder or hub id)")

    def check_runtime(self) -> None:
        """vLLM/SGLang must be importable here (the GPU node); checked before any work starts."""
        if self.server in ("vllm", "sglang") and importlib.util.find_spec(self.server) is None:
            raise CumedError(f"--server {self.server}: {self.server} is not installed in this environment; run on a "
                             f"GPU node with `pip install {self.server}`, or serve the model there and pass --base-url")

    def api_key(self) -> str | None:
        return api_key(self.key_env)

    def public(self) -> dict:
        """What lineage, reports and the work folder's key may name: never the key, never a full URL."""
        out = {"name": self.name, "server": "local" if self.local else self.server}
        if self.url and not self.local:  # a local server's port changes every run
            out["endpoint"] = host_of(self.url)
        if self.model_path:
            out["path"] = self.model_path
        return out

    def identity(self) -> dict:
        """What decides this target's answers (the work folder's key): the public part and the URL path."""
        if self.local:
            return {**self.public(), "stamp": self.stamp}
        return {**self.public(), "url_path": urlsplit(self.url).path if self.url else None}
