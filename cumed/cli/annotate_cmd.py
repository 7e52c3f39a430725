"""``cumed annotate REF --rubric relevance|quality``: a model's rubric scores of documents -> a ``labels`` version."""

from __future__ import annotations

import typer
from rich.table import Table

from cumed.store import Store
from cumed.cli.app import JsonOpt, StoreOpt, app, emit, err, out


@app.command("annotate")
def annotate_cmd(
    ref: str = typer.Argument(..., help="Documents version to score, e.g. cumed-pretrain@1"),
    rubric: str = typer.Option(..., "--rubric", help="relevance | quality (Chinese, 0-5 with a reason)."),
    model: str = typer.Option(..., "--model", help="Model name as the server knows it, e.g. deepseek-chat."),
    base_url: str = typer.Option(..., "--base-url", help="OpenAI-compatible base URL, e.g. https://api.deepseek.com/v1"),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="Environment variable holding the key."),
    n: int = typer.Option(None, "--n", help="Documents in all, split over (source, category) by size (default all)."),
    per_source: int = typer.Option(None, "--per-source", help="At most this many per (source, category)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (and the request seed)."),
    threshold: float = typer.Option(None, "--threshold", help="Score >= this is keep (default: the rubric's, 3)."),
    max_chars: int = typer.Option(3000, "--max-chars", help="Characters of each document the model reads."),
    max_tokens: int = typer.Option(256, "--max-tokens"),
    temperature: float = typer.Option(0.0, "--temperature"),
    name: str = typer.Option(None, "--name", help="Labels dataset (default: <ref's name>-<rubric>-labels)."),
    work_dir: str = typer.Option(None, "--work-dir", help="Resumable work folders (default $CUMED_CACHE/annotate)."),
    concurrency: int = typer.Option(8, "--concurrency", help="Requests in flight."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds per request."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Ask again for the documents that failed last time."),
    store: str = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Score a stratified sample with a rubric through a model and publish a labels version.

    Example: cumed annotate cumed-pretrain@1 --rubric quality --model deepseek-chat
    --base-url https://api.deepseek.com/v1 --per-source 50
    """
    from annotation.scoring.run import annotate
    from cumed.generation.targets import Target

    target = Target(name=model, url=base_url, key_env=api_key_env)

    def progress(done, total, doc_id, failed):
        if not as_json:
            err.print(f"{model}: {done}/{total}{'  failed: ' + doc_id if failed else ''}", highlight=False)

    dv, rep = annotate(Store(store, create=False), ref, target, rubric, n=n, per_source=per_source, seed=seed,
                       threshold=threshold, max_chars=max_chars, max_tokens=max_tokens, temperature=temperature,
                       name=name, work_dir=work_dir, concurrency=concurrency, timeout=timeout,
                       retry_failed=retry_failed, progress=progress)

    def human():
        out.print(f"published {rep['ref']}: {rep['scored']} of {rep['sampled']} documents of {rep['parent']} scored "
                  f"({rep['rubric']}, keep >= {rep['threshold']:g}): {rep['keep']} keep, {rep['discard']} discard; "
                  f"{rep['requests_sent']} requests sent, {rep['failures']} failed")
        t = Table("source/category", "sampled", "scored")
        for s, c in rep["strata"].items():
            t.add_row(s, str(c["sampled"]), str(c["scored"]))
        out.print(t)
        for f in rep["failed"][:20]:
            out.print(f"  failed: document {f['id']} ({f['source']}): {f['error']}")
        if rep["failed"]:
            out.print("ask again for the failed documents with --retry-failed")

    emit(rep, as_json, human)
