"""``cumed generate REF``: K responses per prompt from one or more models → a ``responses`` version."""

from __future__ import annotations

import hashlib
from pathlib import Path

import typer
from rich.table import Table

from cumed.errors import CumedError
from cumed.store import Store
from cumed.cli.app import JsonOpt, StoreOpt, app, emit, err, out
from cumed.generation.local_server import serve_checkpoint


def _stamp(folder: str) -> str:
    """Names, sizes and mtimes of a checkpoint's files: a retrained checkpoint gets a new work folder."""
    h = hashlib.sha256()
    for f in sorted(Path(folder).rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _targets(models: list[str], base_url: str | None, server: str, model_path: str | None, key_env: str):
    from cumed.generation.targets import Target

    if server != "endpoint":
        if len(models) > 1:
            raise CumedError(f"--server {server} serves one model; give one --model-path per run")
        return [Target(name=models[0] if models else Path(model_path or "model").name, server=server,
                       url=base_url, model_path=model_path)]
    if model_path:
        if base_url or any("=" in m for m in models) or len(models) > 1:
            raise CumedError("--model-path serves one local checkpoint; leave --base-url and NAME=URL out "
                             "(or serve it yourself with 'cumed serve' and pass --base-url)")
        return [Target(name=models[0] if models else Path(model_path).name, url="http://127.0.0.1:1/v1",
                       model_path=model_path, local=True, stamp=_stamp(model_path))]
    if not models:
        raise CumedError("give --model NAME with --base-url URL (repeat --model NAME=URL for several models)")
    out_ = []
    for spec in models:
        name, sep, url = spec.partition("=")
        out_.append(Target(name=name.strip(), url=url.strip() if sep else base_url, key_env=key_env))
    return out_


@app.command("generate")
def generate_cmd(
    ref: str = typer.Argument(..., help="Prompts: a conversations or rankings version, e.g. cumed-sft@1"),
    model: list[str] = typer.Option([], "--model", help="Model NAME (with --base-url) or NAME=URL; repeatable."),
    base_url: str = typer.Option(None, "--base-url", help="OpenAI-compatible base URL, e.g. https://api.deepseek.com/v1"),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="Environment variable holding the key."),
    server: str = typer.Option("endpoint", "--server", help="endpoint | vllm | sglang (datatrove starts it on this GPU node)."),
    model_path: str = typer.Option(None, "--model-path", help="Checkpoint: served by vllm/sglang, or by 'cumed serve' without --base-url."),
    k: int = typer.Option(1, "--k", help="Samples per prompt (seeds SEED..SEED+K-1)."),
    n: int = typer.Option(None, "--n", help="Prompts (first N by id; default all)."),
    split: str = typer.Option(None, "--split", help="Only this split of a conversations version."),
    max_tokens: int = typer.Option(512, "--max-tokens"),
    temperature: float = typer.Option(0.7, "--temperature"),
    top_p: float = typer.Option(0.95, "--top-p"),
    seed: int = typer.Option(0, "--seed"),
    name: str = typer.Option(None, "--name", help="Responses dataset (default: <ref's name>-responses)."),
    work_dir: str = typer.Option(None, "--work-dir", help="Resumable work folders (default $CUMED_CACHE/generate or .cache/generate)."),
    concurrency: int = typer.Option(8, "--concurrency", help="Requests in flight per model."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds per request."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Ask again for the samples that failed last time."),
    price_in: float = typer.Option(None, "--price-in", help="USD per 1M prompt tokens (for the cost line)."),
    price_out: float = typer.Option(None, "--price-out", help="USD per 1M completion tokens."),
    store: str = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Sample K responses per prompt and publish a responses version.

    Example: cumed generate cumed-sft@1 --model deepseek-chat --base-url https://api.deepseek.com/v1 --k 4 --n 100
    """
    from cumed.generation import generate

    targets = _targets(model, base_url, server, model_path, api_key_env)
    st = Store(store, create=False)

    def progress(model_name, done, total, prompt_id, failed):
        if not as_json:
            err.print(f"{model_name}: {done}/{total}{'  failed: ' + prompt_id if failed else ''}", highlight=False)

    def run(targets):
        return generate(st, ref, targets, k=k, n=n, split=split, max_tokens=max_tokens, temperature=temperature,
                        top_p=top_p, seed=seed, name=name, work_dir=work_dir, concurrency=concurrency,
                        timeout=timeout, retry_failed=retry_failed, price_in=price_in, price_out=price_out,
                        progress=progress)

    if targets[0].local:
        from dataclasses import replace

        if not (Path(model_path) / "config.json").is_file():
            raise CumedError(f"--model-path {model_path}: no config.json there; give a checkpoint folder (a run's final/)")
        err.print(f"starting cumed serve {model_path} ...")
        with serve_checkpoint(model_path, targets[0].name) as url:
            dv, rep = run([replace(targets[0], url=url)])
    else:
        dv, rep = run(targets)

    def human():
        out.print(f"published {rep['ref']}: {rep['rows']} responses to {rep['prompts']} prompts of {rep['parent']} "
                  f"(k={rep['k']}); {rep['requests_sent']} requests sent, {len(rep['failures'])} failed")
        t = Table("model", "where", "responses", "failed", "requests", "prompt tok", "completion tok", "cost USD")
        for m in rep["models"]:
            t.add_row(m["name"], m.get("endpoint") or m.get("path") or "", str(m["responses"]), str(m["failures"]),
                      str(m["requests_sent"]) + (" (reused)" if m["reused"] else ""), str(m["prompt_tokens"]),
                      str(m["completion_tokens"]), "-" if m["cost_usd"] is None else f"{m['cost_usd']:.4f}")
        out.print(t)
        for f in rep["failures"][:20]:
            out.print(f"  failed: {f['model']} prompt {f['prompt_id']} sample {f['sample']}: {f['error']}")
        if rep["failures"]:
            out.print("ask again for the failed samples with --retry-failed")

    emit(rep, as_json, human)
