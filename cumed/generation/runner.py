"""One target's requests on datatrove's ``InferenceRunner``, resumable in a work folder.

Each (prompt, sample) is one datatrove document and one request (``n`` = 1, seed = base seed +
sample), so a sample is the unit that is checkpointed and never asked twice. The work folder of
a target is keyed by the hash of everything that decides its answers (parent version and content
hash, prompt selection, target, sampling params), so the same command finds it again:

    <work>/<model>-<hash16>/attempt-<i>/{checkpoints/, output/, logs/}

- a finished attempt (datatrove's ``logs/completions/00000``) is read back, not run: a second
  run of the same command sends no request;
- a killed attempt resumes through the runner's own checkpoints (finished documents in
  ``checkpoints/``, finished requests in its sqlite request cache);
- ``retry_failed`` runs a new attempt over the failed samples only.

Retries are the runner's: a connection error, timeout, HTTP 408/409/429 or 5xx is retried up to
6 times with backoff 5 s, 10 s, ... 80 s (fixed in datatrove 0.10); HTTP 400/404/422 and a reply
that fails ``check_reply`` are not retried and become failures named by prompt id. HTTP 401/403
stops the run: every request would fail the same way.

The key is read from the target's environment variable by ``KeyedEndpoint`` at request time; the
runner's config (written to ``logs/executor.json``) holds only the variable's name.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
from collections import Counter
from pathlib import Path

from datatrove.data import Document
from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.inference.run_inference import InferenceConfig, InferenceRunner
from datatrove.pipeline.inference.servers.base import InferenceServer
from datatrove.pipeline.inference.types import InferenceError, ServerError
from datatrove.pipeline.writers.jsonl import JsonlWriter

from cumed.errors import CumedError
from cumed.generation.replies import BadReply, check_reply
from cumed.generation.targets import Target, api_key, host_of

SENT: Counter = Counter()  # HTTP requests sent by this process, per attempt folder (the report's "requests")
REFUSED: dict[str, str] = {}  # why an endpoint stopped a run (datatrove's start retry hides the cause)
RETRYABLE = {408, 409, 429}


class KeyedEndpoint(InferenceServer):
    """datatrove's endpoint server, with the key from the environment on every call.

    datatrove 0.10's ``EndpointServer`` sends no ``Authorization`` to a localhost URL, needs the key
    in the (serialised) config otherwise, and treats HTTP 500 as fatal; this one keeps its
    lifecycle and replaces the single HTTP exchange, so retries and caching stay datatrove's."""

    def __init__(self, config: InferenceConfig, rank: int, key_env: str | None, max_tokens: int | None,
                 counter: str):
        super().__init__(config, rank)
        self.endpoint_url = config.endpoint_url.rstrip("/")
        self.key_env, self.max_tokens, self.counter = key_env, max_tokens, counter
        self._client = None

    def _headers(self) -> dict:
        key = api_key(self.key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _http(self):
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.request_timeout)
        return self._client

    async def start_server(self):
        return None

    async def monitor_health(self) -> None:
        await asyncio.Future()  # nothing to watch: the endpoint is someone else's

    def get_base_url(self) -> str:
        return self.endpoint_url

    async def _wait_until_ready(self, max_attempts: int = 10, delay_sec: float = 1.0) -> None:
        await super()._wait_until_ready(max_attempts=max_attempts, delay_sec=delay_sec)

    async def is_ready(self) -> bool:
        try:
            r = await self._http().get(f"{self.endpoint_url}/models", headers=self._headers(), timeout=10.0)
        except Exception:
            return False
        if r.status_code in (401, 403):
            REFUSED[self.counter] = self._refused(r.status_code)
            raise ServerError(REFUSED[self.counter])
        return r.status_code < 500  # some endpoints have no /models; any answer means it is up

    def _refused(self, status: int) -> str:
        where = f"${self.key_env}" if self.key_env else "--api-key-env VAR"
        return f"{host_of(self.endpoint_url)} refused the API key (HTTP {status}); set {where} to a valid key"

    async def _make_request(self, payload: dict) -> dict:
        SENT[self.counter] += 1
        failure = None
        try:
            r = await self._http().post(f"{self.endpoint_url}/chat/completions", json=payload, headers=self._headers())
        except Exception as e:  # transport errors -> the runner's retry; raised below, outside this block,
            # so no traceback that datatrove logs reaches the HTTP client's frames (they hold the headers)
            failure = (TimeoutError if "Timeout" in type(e).__name__ else ConnectionError)(
                f"{type(e).__name__} talking to {host_of(self.endpoint_url)}")
        if failure is not None:
            raise failure
        if r.status_code in (401, 403):
            REFUSED[self.counter] = self._refused(r.status_code)
            raise ServerError(REFUSED[self.counter])
        if r.status_code in RETRYABLE or r.status_code >= 500:
            raise ConnectionError(f"HTTP {r.status_code} from {host_of(self.endpoint_url)}")
        if r.status_code in (400, 404, 422):
            raise InferenceError(None, f"BadRequestError: HTTP {r.status_code}: {r.text[:200]}")
        if r.status_code != 200:
            raise InferenceError(None, f"HTTP {r.status_code}: {r.text[:200]}")
        try:
            return check_reply(r.content, payload.get("max_tokens", self.max_tokens))
        except BadReply as e:
            raise InferenceError(None, str(e)) from None

    async def server_cleanup(self) -> None:
        await super().server_cleanup()
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class Runner(InferenceRunner):
    """``InferenceRunner`` whose endpoint server is ``KeyedEndpoint`` (vLLM/SGLang: datatrove's own)."""

    def __init__(self, *args, key_env: str | None, max_tokens: int | None, counter: str, **kw):
        super().__init__(*args, **kw)
        self.key_env, self.max_tokens, self.counter = key_env, max_tokens, counter

    def _init_server(self, rank: int) -> InferenceServer:
        if self.config.server_type == "endpoint":
            return KeyedEndpoint(self.config, rank, self.key_env, self.max_tokens, self.counter)
        return super()._init_server(rank)


def _rollout(progress):
    async def rollout(doc: Document, generate) -> dict:
        payload = {"messages": doc.metadata["prompt"], **doc.metadata["params"]}
        try:
            r = await generate(payload)
            out = {"response": r.text, "finish_reason": r.finish_reason,
                   "prompt_tokens": int(r.usage.get("prompt_tokens", 0)),
                   "completion_tokens": int(r.usage.get("completion_tokens", 0))}
        except InferenceError as e:
            out = {"error": str(e.error)[:300]}
        if progress is not None:
            progress(doc.metadata, out)
        return out

    return rollout


def _docs(prompts: list[dict], samples: list[tuple[str, int]] | None, k: int, params: dict, seed: int):
    by_id = {p["prompt_id"]: p for p in prompts}
    wanted = samples if samples is not None else [(p["prompt_id"], s) for p in prompts for s in range(k)]
    for pid, s in wanted:
        yield Document(text=by_id[pid]["messages"][-1]["content"], id=f"{pid}#{s}",
                       metadata={"prompt_id": pid, "sample": s, "prompt": by_id[pid]["messages"],
                                 "params": {**params, "seed": seed + s}})


def _attempt_done(folder: Path) -> bool:
    return (folder / "logs" / "completions" / "00000").is_file()


def read_results(folder: Path) -> dict[str, dict]:
    """``doc id -> {prompt_id, sample, prompt, params, result}`` over all attempts, later ones winning."""
    out: dict[str, dict] = {}
    for attempt in sorted(folder.glob("attempt-*"), key=lambda p: int(p.name.split("-")[1])):
        for f in sorted((attempt / "output").glob("*.jsonl")):
            for line in f.read_text(encoding="utf-8").splitlines():
                d = json.loads(line)
                results = d["metadata"].get("rollout_results") or [{"error": "no result recorded"}]
                out[d["id"]] = {**{k: d["metadata"][k] for k in ("prompt_id", "sample", "prompt", "params")},
                                "result": results[0]}
    return out


def run_target(target: Target, prompts: list[dict], k: int, params: dict, seed: int, folder: Path, *,
               concurrency: int = 8, timeout: float = 300.0, retry_failed: bool = False, progress=None) -> dict:
    """Run (or resume, or reuse) one target's requests; returns ``{results, sent, ran}``."""
    missing = [m for m in ("aiofiles", "aiosqlite", "httpx") if importlib.util.find_spec(m) is None]
    if missing:
        raise CumedError(f"cumed generate needs {', '.join(missing)} (datatrove's inference checkpoints); "
                         "pip install 'cumed[generate]'")
    folder.mkdir(parents=True, exist_ok=True)
    attempts = sorted(int(p.name.split("-")[1]) for p in folder.glob("attempt-*"))
    samples = None
    if attempts and _attempt_done(folder / f"attempt-{attempts[-1]}"):
        failed = [(r["prompt_id"], r["sample"]) for r in read_results(folder).values() if "error" in r["result"]]
        if not (retry_failed and failed):
            return {"results": read_results(folder), "sent": 0, "ran": False}
        attempt, samples = attempts[-1] + 1, sorted(failed)
    else:
        attempt = attempts[-1] if attempts else 0
        if attempt > 0:  # a killed retry attempt resumes over the same failed samples
            samples = json.loads((folder / f"attempt-{attempt}" / "samples.json").read_text())
            samples = [tuple(s) for s in samples]
    run_dir = folder / f"attempt-{attempt}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if samples is not None:
        (run_dir / "samples.json").write_text(json.dumps(samples))
    docs = list(_docs(prompts, samples, k, params, seed))
    endpoint = target.server == "endpoint"
    config = InferenceConfig(
        server_type=target.server, model_name_or_path=target.name if endpoint else target.model_path,
        endpoint_url=target.url, api_key=None, rollouts_per_document=1,
        max_concurrent_generations=concurrency, max_concurrent_documents=concurrency, request_timeout=timeout,
        metric_interval=60, server_log_folder=None if endpoint else str(run_dir / "server-logs"),
    )
    counter = str(run_dir)
    runner = Runner(_rollout(progress), config,
                    JsonlWriter(str(run_dir / "output"), output_filename="${rank}_chunk_${chunk_index}.jsonl",
                                compression=None),
                    checkpoints_local_dir=str(run_dir / "checkpoints"), records_per_chunk=1000,
                    key_env=target.key_env, max_tokens=params.get("max_tokens"), counter=counter)

    def source(data=None, rank: int = 0, world_size: int = 1):
        yield from docs

    before = SENT[counter]
    try:
        LocalPipelineExecutor(pipeline=[source, runner], tasks=1, workers=1, logging_dir=str(run_dir / "logs")).run()
    except ServerError as e:
        # datatrove leaves the sibling requests' ServerErrors unretrieved; asyncio would print each
        # at exit after our one-line error. They say nothing more: silence them.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        raise CumedError(f"model {target.name}: {REFUSED.get(counter) or e}; "
                         f"the finished requests are kept in {folder} and a rerun resumes") from None
    except InferenceError as e:
        raise CumedError(f"model {target.name}: {e.error}; a rerun resumes from {folder}") from None
    if not _attempt_done(run_dir):
        raise CumedError(f"model {target.name}: the inference run did not finish (see {run_dir / 'logs'}); "
                         "rerun the same command to resume")
    return {"results": read_results(folder), "sent": SENT[counter] - before, "ran": True}
