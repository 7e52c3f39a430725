"""``cumed rank import-disc|push|pull|pairs``: ranking annotation and reward pairs."""

from __future__ import annotations

import typer
from rich.table import Table

from cumed.errors import CumedError
from cumed.store import Store
from cumed.cli.review_cmd import BackendOpt, PullBackendOpt, TokenOpt, UrlOpt, _backend, backend_for_batch
from cumed.cli.app import JsonOpt, StoreOpt, app, default_raw, emit, out

rank_app = typer.Typer(help="Rank K responses per prompt (Label Studio Ranker) and build reward pairs.",
                       no_args_is_help=True)
app.add_typer(rank_app, name="rank")


@rank_app.command("import-disc")
def import_disc_cmd(
    raw: str = typer.Option(None, "--raw", help="Raw data root (default: $CUMED_RAW or ../shared/data/raw)."),
    source_order: bool = typer.Option(False, "--source-order", help="Rank by source (doctor > gpt-4 > ...) instead of GPT-4 score."),
    doctor: str = typer.Option("top", "--doctor", help="Score ranking: doctor answer on top | exclude."),
    name: str = typer.Option("disc-rankings", "--name", help="Rankings dataset name."),
    store: str = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Import DISC-MedLLM's evaluation as a rankings dataset.  Example: cumed rank import-disc --json"""
    from annotation.ranking.build import import_disc

    dv, rep = import_disc(raw or default_raw(), Store(store), name=name, source_order=source_order, doctor=doctor)
    res = {"ref": dv.ref, "rows": dv.rows, "method": rep["method"], "sets": rep["sets"],
           "unparsable_scores": rep["unparsable_scores"], "missing_scores": len(rep["missing_scores"]),
           "tie_groups": rep["tie_groups"]}

    def human():
        out.print(f"published {dv.ref}: {dv.rows} prompts ranked by {rep['method']} "
                  f"({rep['tie_groups']} tie groups); unparsable score rows: {len(rep['unparsable_scores'])}")
        for u in rep["unparsable_scores"]:
            out.print(f"  unparsable: {u['set']} {u['model']} id={u['id']} line {u['line']}: {u['text']!r}")

    emit(res, as_json, human)


@rank_app.command("push")
def push_cmd(
    ref: str = typer.Argument(..., help="Rankings or conversations dataset, e.g. disc-rankings@1"),
    n: int = typer.Option(50, "--n", help="How many prompts to queue."),
    k: int = typer.Option(4, "--k", help="Responses per task (2..8)."),
    seed: int = typer.Option(0, "--seed", help="Seed for sampling, response ids and display order."),
    ties: bool = typer.Option(False, "--ties", help="Allow ties (Ranker with one bucket per rank)."),
    no_ratings: bool = typer.Option(False, "--no-ratings", help="Leave out the per-dimension ratings."),
    responses: list[str] = typer.Option([], "--responses", help=(
        "A responses version (NAME@N, from cumed generate): each task is the doctor's answer plus K-1 of its "
        "answers; or MODEL=FILE.jsonl answers per prompt_id, repeatable.")),
    backend: str = BackendOpt,
    ls_url: str = UrlOpt,
    ls_token_file: str = TokenOpt,
    store: str = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Queue prompts for ranking.

    Example: cumed rank push cumed-sft@latest --k 4 --responses cumed-sft-responses@1
    """
    from annotation.ranking.queue import push
    answers, refs = {}, []
    for spec in responses:
        model, sep, path = spec.partition("=")
        if not sep:
            refs.append(spec)  # no "=": a responses version
            continue
        if not model or not path:
            raise CumedError(f"--responses {spec!r}: use MODEL=FILE.jsonl or a responses version NAME@N")
        answers[model] = path
    if len(refs) > 1:
        raise CumedError(f"--responses {' '.join(refs)}: give one responses version (publish the models' answers together)")
    res = push(Store(store, create=False), ref, n, _backend(backend, ls_url, ls_token_file, "ranking"), k=k,
               seed=seed, ties=ties, ratings=not no_ratings, answers=answers, responses_ref=refs[0] if refs else None)

    def human():
        src = f"{res['ref']} + {res['responses_ref']}" if res.get("responses_ref") else res["ref"]
        out.print(f"queued {res['tasks']} prompts x {res['k']} responses of {src} as batch [bold]{res['batch']}[/]")
        if res.get("selection"):
            sel = res["selection"]
            out.print(f"of {sel['prompts']} prompts: {sel['eligible']} could make a task, {sel['already_queued']} "
                      f"already queued; skipped: " + ", ".join(f"{r} {c}" for r, c in sel["skipped"].items()))
        if res.get("tasks_file"):
            out.print(f"tasks: {res['tasks_file']}\nlabeling config: {res['config_file']}")
            out.print(f"import both into Label Studio, rank, export JSON, then:\n  cumed rank pull {res['batch']} --from EXPORT.json")
        else:
            out.print(f"rank them in Label Studio, then: cumed rank pull {res['batch']} --backend {backend}")

    emit(res, as_json, human)


@rank_app.command("pull")
def pull_cmd(
    batch: str = typer.Argument(..., help="Batch id printed by rank push, e.g. disc-rankings.k001"),
    source: str = typer.Option(None, "--from", help="Label Studio JSON export."),
    name: str = typer.Option("cumed-rm-rankings", "--name", help="Rankings dataset to publish."),
    backend: str = PullBackendOpt,
    ls_url: str = UrlOpt,
    ls_token_file: str = TokenOpt,
    store: str = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Validate rankings, report agreement, publish a rankings version.

    Example: cumed rank pull disc-rankings.k001 --from export.json
    """
    from annotation.ranking.queue import RankState, pull

    st = Store(store, create=False)
    state = RankState.for_batch(st, batch)
    factory = backend_for_batch(state.batch(batch), backend, ls_url, ls_token_file, source, task_type="ranking")
    res = pull(st, batch, factory(state.root / batch), source, publish=name)

    def human():
        a, c = res["agreement"], res["counts"]
        out.print(f"{batch}: {res['new_rankings']} new rankings ({res['rankings']} in total, "
                  f"{res['ranked_prompts']} prompts){' -> ' + res['ref'] if res.get('ref') else ''}")
        if c["mismatch"]:
            out.print(f"[red]count mismatch[/]: declared {c['declared']}, exported {c['exported']}, "
                      f"submitted {c['submitted']} = valid {c['valid']} + problems {len(res['problems'])}: {c['accounted']}")
        tau = a["kendall_tau"]
        out.print(f"agreement: Kendall's tau {'n/a' if tau is None else f'{tau:.3f}'} over {a['prompts_multi']} "
                  f"multi-annotator prompts; {len(a['conflicts'])} conflicts for adjudication")
        if res["problems"]:
            t = Table("task", "annotation", "prompt", "problem", title="skipped rankings")
            for p in res["problems"]:
                t.add_row(str(p["task_id"]), str(p["annotation_id"]), str(p["prompt_id"]), p["problem"])
            out.print(t)

    emit(res, as_json, human)


@rank_app.command("pairs")
def pairs_cmd(
    rankings: str = typer.Argument(..., help="Rankings dataset, e.g. disc-rankings@1"),
    all_pairs: bool = typer.Option(False, "--all-pairs", help="Every better/worse pair, not only adjacent ranks."),
    name: str = typer.Option("cumed-rm", "--name", help="Preferences dataset to publish."),
    margin: str = typer.Option("auto", "--margin", help="auto (score difference where scores agree, else rank distance) | rank | score"),
    validation: float = typer.Option(0.05, "--validation"),
    test: float = typer.Option(0.05, "--test"),
    seed: str = typer.Option("cumed-rm", "--seed"),
    cluster_threshold: float = typer.Option(0.6, "--cluster-threshold", help="Near-duplicate prompt grouping (0 = off)."),
    mix: str = typer.Option(None, "--mix", help="General-domain preferences dataset to mix in."),
    mix_ratio: float = typer.Option(0.0, "--mix-ratio", help="General rows per domain row, per split."),
    store: str = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Build (chosen, rejected) pairs.  Example: cumed rank pairs disc-rankings@1 --json"""
    from annotation.ranking.build import publish_pairs

    dv, stats = publish_pairs(Store(store, create=False), rankings, name=name,
                              mode="all" if all_pairs else "adjacent", margin=margin, validation=validation,
                              test=test, seed=seed, cluster_threshold=cluster_threshold or None,
                              mix_ref=mix, mix_ratio=mix_ratio)
    res = {"ref": dv.ref, "rows": dv.rows, "splits": stats["splits"], "mode": stats["mode"],
           "margin_kinds": stats["margin_kinds"], "mixing": stats.get("mixing")}

    def human():
        out.print(f"published {dv.ref}: {dv.rows} pairs ({stats['mode']}) from {stats['prompts']} prompts")
        for s, v in stats["splits"].items():
            out.print(f"  {s}: {v['prompts']} prompts, {v['pairs']} pairs")

    emit(res, as_json, human)
