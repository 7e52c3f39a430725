"""``cumed review push|pull|apply``: manual review of documents."""

from __future__ import annotations

import os

import typer
from rich.table import Table

from cumed.errors import CumedError
from cumed.store import Store
from cumed.cli.app import JsonOpt, StoreOpt, app, emit, out

review_app = typer.Typer(help="Manual review: sample documents, queue them, pull decisions, publish.", no_args_is_help=True)
app.add_typer(review_app, name="review")

BackendOpt = typer.Option("file", "--backend", help="file (embedded default, no server) | labelstudio")
PullBackendOpt = typer.Option(None, "--backend", show_default=False,
                              help="file | labelstudio (default: the backend the batch was pushed to; "
                                   "file when --from is given).")
UrlOpt = typer.Option(None, "--ls-url", help="Label Studio URL (default: $LABEL_STUDIO_URL).")
TokenOpt = typer.Option(None, "--ls-token-file", help="File holding the API token (default: $LABEL_STUDIO_API_KEY).")


def _backend(kind: str, url: str | None, token_file: str | None, task_type: str = "review"):
    """A factory ``batch_dir -> backend``; shared by review and rank commands."""
    if kind == "file":
        from annotation.review.file_backend import FileBackend

        return lambda batch_dir: FileBackend(batch_dir)
    if kind == "labelstudio":
        from annotation.labelstudio.backend import LabelStudioBackend

        return lambda batch_dir: LabelStudioBackend(url=url, token_file=token_file, task_type=task_type)
    raise CumedError(f"unknown review backend {kind!r}; use file or labelstudio")


def _local_token_file(url: str | None) -> str | None:
    """The env file of the local server (``cumed labelstudio start``, default data dir) when it
    serves ``url``: its token is only ever sent to the server it belongs to."""
    if not url:
        return None
    from annotation.labelstudio.server import LabelStudioServer, read_env_file

    env_file = LabelStudioServer().env_file
    try:
        local_url = read_env_file(env_file).get("LABEL_STUDIO_URL", "")
    except OSError:
        return None
    return str(env_file) if local_url.rstrip("/") == url.rstrip("/") else None


def backend_for_batch(info: dict, kind: str | None, url: str | None, token_file: str | None,
                      source: str | None = None, task_type: str = "review"):
    """The backend factory for pulling a pushed batch (``info``: its ``batch.json``).

    Without ``--backend``: ``file`` when ``--from`` names an export, else the backend recorded at
    push time. For ``labelstudio`` the URL is ``--ls-url``, else ``$LABEL_STUDIO_URL``, else the
    server the batch was pushed to; the token ``--ls-token-file``, else ``$LABEL_STUDIO_API_KEY``,
    else the local server's env file if that server is the one at the URL.
    """
    kind = kind or ("file" if source else info.get("backend") or "file")
    if kind == "labelstudio":
        url = url or os.environ.get("LABEL_STUDIO_URL") or (info.get("push") or {}).get("url")
        if not token_file and not os.environ.get("LABEL_STUDIO_API_KEY"):
            token_file = _local_token_file(url)
    return _backend(kind, url, token_file, task_type)


@review_app.command("push")
def push_cmd(
    ref: str = typer.Argument(..., help="Documents dataset, e.g. cumed-pretrain@1"),
    n: int = typer.Option(100, "--n", help="How many documents to queue."),
    strategy: str = typer.Option("stratified", "--strategy", help="stratified | score_band | uncertainty"),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (same seed, same batch)."),
    threshold: float = typer.Option(0.5, "--threshold", help="Classifier threshold for --strategy uncertainty."),
    predictions: str = typer.Option(None, "--predictions",
                                    help="Pre-annotate: a classifier (quality@N) or a labels version (cumed annotate) "
                                         "whose score and keep/discard suggestion each task carries."),
    backend: str = BackendOpt,
    ls_url: str = UrlOpt,
    ls_token_file: str = TokenOpt,
    store: str = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Queue a batch of documents for review.

    Examples: cumed review push cumed-pretrain@1 --n 50;
    cumed review push cumed-pretrain@1 --n 50 --predictions quality@3 --backend labelstudio
    """
    from annotation.review.queue import push

    res = push(Store(store, create=False), ref, n, _backend(backend, ls_url, ls_token_file), strategy=strategy,
               seed=seed, threshold=threshold, predictions=predictions)

    def human():
        out.print(f"queued {res['tasks']} documents of {res['ref']} as batch [bold]{res['batch']}[/] ({res['backend']})")
        if res.get("predictions"):
            p = res["predictions"]
            out.print(f"pre-annotated by {p['model_version']}: {p['tasks_with_prediction']} tasks carry its "
                      f"suggestion, {p['tasks_without_prediction']} none")
        if res["backend"] == "file":
            out.print(f"tasks: {res['tasks_file']}\nlabeling config: {res['config_file']}")
            out.print("import both into a Label Studio project, review, export JSON, then:\n"
                      f"  cumed review pull {res['batch']} --from EXPORT.json")
        elif res["backend"] == "labelstudio" and res.get("url") and res.get("project"):
            out.print(f"review at {res['url']}/projects/{res['project']}, then:\n"
                      f"  cumed review pull {res['batch']}   (the batch remembers its server)")

    emit(res, as_json, human)


@review_app.command("pull")
def pull_cmd(
    batch: str = typer.Argument(..., help="Batch id printed by review push, e.g. cumed-pretrain.r001"),
    source: str = typer.Option(None, "--from", help="Label Studio JSON export (file backend)."),
    backend: str = PullBackendOpt,
    ls_url: str = UrlOpt,
    ls_token_file: str = TokenOpt,
    store: str = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Collect the decisions of a batch from the backend it was pushed to.

    Examples: cumed review pull cumed-pretrain.r001 (a Label Studio batch: its server is recorded);
    cumed review pull cumed-pretrain.r001 --from export.json (a Label Studio JSON export)
    """
    from annotation.review.queue import ReviewState, pull

    st = Store(store, create=False)
    state = ReviewState.for_batch(st, batch)
    factory = backend_for_batch(state.batch(batch), backend, ls_url, ls_token_file, source)
    res = pull(st, batch, factory(state.root / batch), source)

    def human():
        out.print(f"{batch}: {res['new_decisions']} new decisions ({res['decisions']} in total, "
                  f"{res['reviewed_docs']} documents reviewed)")
        if res["problems"]:
            t = Table("task", "annotation", "problem", title="skipped annotations")
            for p in res["problems"]:
                t.add_row(str(p["task_id"]), str(p["annotation_id"]), p["problem"])
            out.print(t)

    emit(res, as_json, human)


@review_app.command("apply")
def apply_cmd(
    ref: str = typer.Argument(..., help="The version the batch was sampled from (or a later one)."),
    batch: list[str] = typer.Option(..., "--batch", help="Batch id; repeat for several."),
    store: str = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Publish the next version with discarded documents removed.

    Example: cumed review apply cumed-pretrain@1 --batch cumed-pretrain.r001
    """
    from annotation.review.apply import apply

    dv, review = apply(Store(store, create=False), ref, batch)
    res = {"ref": dv.ref, "rows": dv.rows, "removed_rows": dv.removed_rows, **review}

    def human():
        out.print(f"published {dv.ref}: {review['discarded']} documents discarded by review, "
                  f"{review['kept_by_review']} confirmed, {len(review['ties_for_adjudication'])} ties for adjudication")
        for b, s in review["batches"].items():
            alpha = s["krippendorff_alpha"]
            out.print(f"  {b}: {s['decisions']} decisions, Krippendorff's alpha "
                      f"{'n/a (one annotator per document)' if alpha is None else f'{alpha:.3f}'}")
            m = s.get("model_agreement")
            if m:
                c = m["confusion"]
                rate = "n/a" if m["rate"] is None else f"{m['rate']:.1%}"
                kappa = "n/a" if m["kappa"] is None else f"{m['kappa']:.3f}"
                out.print(f"    model {m['model_version']} vs reviewers: {m['agree']}/{m['compared']} agree ({rate}), "
                          f"kappa {kappa}; model keep -> reviewer keep {c['keep']['keep']}, discard "
                          f"{c['keep']['discard']}; model discard -> reviewer keep {c['discard']['keep']}, discard "
                          f"{c['discard']['discard']}")

    emit(res, as_json, human)
