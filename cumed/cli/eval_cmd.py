"""``cumed eval judge|metrics|report``: pairwise rubric judge, reference metrics, HTML report.

The work is in ``training/evaluation``; ``openai``/``sacrebleu``/``transformers`` are imported only
when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cumed.errors import CumedError
from cumed.cli.app import JsonOpt, StoreOpt, app, default_raw, emit, out

eval_app = typer.Typer(help="Evaluate models: pairwise judge (Table 2 rubric), BLEU/ROUGE-L, HTML report.",
                       no_args_is_help=True)
app.add_typer(eval_app, name="eval")

BenchOpt = typer.Option(..., "--bench", help="huatuo26m_test, cmb_clin, disc_cmd, disc_cmid or disc_eval.")
SubsetOpt = typer.Option("all", "--subset", help="all or urology (keyword subset).")
RawOpt = typer.Option(None, "--raw", help="Raw data folder (default: $CUMED_RAW or ../shared/data/raw).", show_default=False)


def _model_name(path: Path) -> str:
    return path.stem


def _answers(a: str, b: str, bench: str | None, sample: int, a_model: str | None, b_model: str | None,
             store: str | None, raw: str | None, subset: str) -> tuple[list, dict, dict, dict, dict]:
    """(items, answers A, answers B, skip, meta): from two JSONL files and a benchmark, or from two
    responses versions (their prompts are the items)."""
    for x in (a, b):
        if x.endswith((".jsonl", ".json")) and not Path(x).is_file():
            raise CumedError(f"answers file {x} not found")
    files = [Path(x).is_file() for x in (a, b)]
    if all(files):
        from training.evaluation.benchmarks import load_answers, load_benchmark

        if not bench:
            raise CumedError("--bench: name the benchmark the JSONL answers answer (or give responses versions)")
        if a_model or b_model:
            raise CumedError("--a-model/--b-model pick a model of a responses version; JSONL files hold one each")
        return (load_benchmark(bench, raw or default_raw(), subset), load_answers(a), load_answers(b), {},
                {"bench": bench, "subset": subset, "model_a": _model_name(Path(a)), "model_b": _model_name(Path(b))})
    if any(files):
        raise CumedError("--a and --b: give two JSONL answer files or two responses versions, not one of each")
    if bench:
        raise CumedError("--bench is for JSONL answers; responses versions bring their prompts (leave --bench out)")
    from cumed.store import open_ref
    from training.evaluation.responses import pair, side

    sides = []
    for ref, model in ((a, a_model), (b, b_model)):
        st, r = open_ref(ref, store)
        sides.append(side(st.get(r), sample, model))
    items, skip, report = pair(*sides)
    if subset == "urology":
        items = [it for it in items if it.urology]
    return (items, sides[0]["answers"], sides[1]["answers"], skip,
            {"bench": None, "subset": subset, "model_a": f"{sides[0]['ref']}:{sides[0]['model']}",
             "model_b": f"{sides[1]['ref']}:{sides[1]['model']}", "sample": sample, "responses": report})


@eval_app.command("judge")
def judge_cmd(
    bench: Optional[str] = typer.Option(None, "--bench", help="With JSONL answers: huatuo26m_test, cmb_clin, "
                                        "disc_cmd, disc_cmid or disc_eval. Leave out for responses versions."),
    a: str = typer.Option(..., "--a", help="Answers of model A: JSONL {id, answer}, or a responses version NAME@N."),
    b: str = typer.Option(..., "--b", help="Answers of model B: JSONL {id, answer}, or a responses version NAME@N."),
    sample: int = typer.Option(0, "--sample", help="Responses versions: which sample of each prompt is the answer."),
    a_model: Optional[str] = typer.Option(None, "--a-model", help="Responses version A holds several models: this one."),
    b_model: Optional[str] = typer.Option(None, "--b-model", help="Responses version B holds several models: this one."),
    store: Optional[str] = StoreOpt,
    limit: Optional[int] = typer.Option(None, "--limit", help="Judge only the first N items."),
    subset: str = SubsetOpt,
    raw: Optional[str] = RawOpt,
    backend: str = typer.Option("openai", "--backend", help="openai (any OpenAI-compatible endpoint) or local."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Endpoint (default: $CUMED_JUDGE_BASE_URL)."),
    judge_model: Optional[str] = typer.Option(None, "--judge-model",
                                              help="Model name (default: $CUMED_JUDGE_MODEL); with --backend local, a model folder."),
    price_prompt: float = typer.Option(0.0, "--price-prompt-1k", help="Cost per 1k prompt tokens."),
    price_completion: float = typer.Option(0.0, "--price-completion-1k", help="Cost per 1k completion tokens."),
    workers: int = typer.Option(4, "--workers", help="Concurrent requests."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds per request."),
    retries: int = typer.Option(4, "--retries", help="Retries after 5xx/timeout/connection errors."),
    backoff: float = typer.Option(1.0, "--backoff", help="First retry delay in seconds (doubles each retry)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Judgment cache (default: $CUMED_CACHE/judge)."),
    out_path: Optional[Path] = typer.Option(None, "--out", help="Also write the full result JSON here."),
    as_json: bool = JsonOpt,
):
    """Compare answers A and B with a judge, in both orders, on one benchmark or on two responses versions.

    Example: cumed eval judge --bench huatuo26m_test --a sft.jsonl --b rs.jsonl
    Responses versions (matched on prompt id, sample 0): cumed eval judge --a sft-responses@1 --b rs-responses@1
    """
    import json

    from training.evaluation.judge import DIMENSIONS, Judge, JudgeCache, OpenAIBackend, TransformersBackend, run_judge

    if limit is not None and limit < 1:
        raise CumedError(f"--limit {limit}: give a positive number of items")
    items, ans_a, ans_b, skip, meta = _answers(a, b, bench, sample, a_model, b_model, store, raw, subset)
    if backend == "openai":
        be = OpenAIBackend(base_url=base_url, model=judge_model, timeout=timeout)
    elif backend == "local":
        if not judge_model:
            raise CumedError("--backend local needs --judge-model MODEL_FOLDER")
        be = TransformersBackend(judge_model)
    else:
        raise CumedError(f"--backend {backend!r}: use openai or local")
    cache = JudgeCache(cache_dir)
    judge = Judge(be, cache, retries=retries, backoff=backoff, price_prompt_1k=price_prompt,
                  price_completion_1k=price_completion)
    try:
        res = run_judge(judge, items, ans_a, ans_b, limit=limit, workers=workers, meta=meta, skip=skip)
    finally:
        cache.close()
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")

    def human():
        s = res["summary"]
        on = bench or "their prompts"
        out.print(f"[bold]{res['model_a']}[/] vs [bold]{res['model_b']}[/] on {on} ({subset}), judge {res['judge_model']}: "
                  f"{s['n_valid']} valid, {s['n_invalid']} invalid")
        if res.get("responses"):
            r = res["responses"]
            out.print(f"prompts answered only by A: {len(r['only_a'])}, only by B: {len(r['only_b'])}, "
                      f"different prompts under one id: {len(r['different_prompt'])}")
        for d in DIMENSIONS:
            out.print(f"  {d:<10} win {s[d]['win']:>5}  draw {s[d]['draw']:>5}  loss {s[d]['loss']:>5}")
        st, u = res["stats"], res["usage"]
        out.print(f"requests {st['requests']} (cache hits {st['cache_hits']}), tokens {u['total_tokens']}, cost {u['cost']}")
        for x in res["invalid"][:20]:
            out.print(f"  invalid {x['id']}: {x['reason']}")

    emit(res, as_json, human)


@eval_app.command("metrics")
def metrics_cmd(
    bench: str = BenchOpt,
    answers: list[Path] = typer.Option(..., "--answers", help="JSONL {id, answer}; repeat for several models."),
    subset: str = SubsetOpt,
    raw: Optional[str] = RawOpt,
    as_json: bool = JsonOpt,
):
    """Character BLEU, character ROUGE-L, length and distinct-1/2 per model (all items and urology subset)."""
    from training.evaluation.benchmarks import load_answers, load_benchmark
    from training.evaluation.metrics import compute_metrics

    try:
        import sacrebleu  # noqa: F401
    except ImportError as e:
        raise CumedError("metrics need sacrebleu: pip install 'cumed[training]'") from e
    items = load_benchmark(bench, raw or default_raw(), subset)
    res = {"bench": bench, "subset": subset,
           "metrics": {_model_name(p): compute_metrics(items, load_answers(p)) for p in answers}}

    def human():
        for model, per in res["metrics"].items():
            for sub, m in per.items():
                bleu = "-" if m["bleu"] is None else f"{m['bleu']:.2f}"
                rl = "-" if m["rouge_l"] is None else f"{m['rouge_l']['f']:.4f}"
                out.print(f"{model:<20} {sub:<8} n={m['n']:<5} BLEU {bleu:>6}  ROUGE-L {rl:>6}  len {m['length_mean']:.1f}  "
                          f"d1 {m['distinct_1']:.3f}  d2 {m['distinct_2']:.3f}")

    emit(res, as_json, human)


@eval_app.command("report")
def report_cmd(
    results: Path = typer.Argument(..., help="JSON from 'cumed eval judge --json' (or a list of such results)."),
    out_html: Path = typer.Option(..., "--out", help="HTML file to write."),
    as_json: bool = JsonOpt,
):
    """Static HTML report: win/draw/loss stacked bars per dimension."""
    from training.evaluation.report import write_report

    p = write_report(results, out_html)
    emit({"report": str(p)}, as_json)


@eval_app.command("compare")
def compare_cmd(
    child: Path = typer.Option(..., "--child", help="Checkpoint folder to evaluate (e.g. runs/sft-*/final)."),
    parent: Path = typer.Option(..., "--parent", help="The checkpoint it was trained from (e.g. runs/pretrain-*/final)."),
    tokenizer: Path = typer.Option(..., "--tokenizer", help="Tokenizer folder shared by both."),
    bench: str = typer.Option("huatuo26m_test", "--bench", help="huatuo26m_test, cmb_clin, disc_cmd, disc_cmid or disc_eval."),
    subset: str = typer.Option("urology", "--subset", help="all or urology (keyword subset)."),
    n: int = typer.Option(16, "--n", help="How many items to answer."),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens"),
    raw: Optional[str] = RawOpt,
    out_json: Optional[Path] = typer.Option(None, "--out", help="Also write the results JSON here (for cumed eval report)."),
    as_json: bool = JsonOpt,
):
    """Before/after: a checkpoint and its parent answer the same prompts; metrics side by side.

    Example: cumed eval compare --child runs/sft-X/final --parent runs/pretrain-Y/final --tokenizer runs/tok --n 32
    """
    import json

    from training.evaluation.compare import compare_checkpoints

    for label, p in (("--child", child), ("--parent", parent), ("--tokenizer", tokenizer)):
        if not p.is_dir():
            raise CumedError(f"{label} {p} is not a folder; give a saved Hugging Face checkpoint / tokenizer folder")
    res = compare_checkpoints(child, parent, tokenizer, raw or default_raw(), bench=bench, subset=subset, n=n,
                              max_new_tokens=max_new_tokens, names=(f"{child.parent.name}", f"{parent.parent.name}"))
    if out_json:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")

    def human():
        for model, per in res["metrics"].items():
            m = per["all"]
            rl = "-" if m["rouge_l"] is None else f"{m['rouge_l']['f']:.4f}"
            out.print(f"{model:<40} n={m['n']:<4} ROUGE-L {rl:>6}  len {m['length_mean']:.1f}  d2 {m['distinct_2']:.3f}")

    emit(res, as_json, human)
