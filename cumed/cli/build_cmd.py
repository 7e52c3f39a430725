"""``cumed build RECIPE``: the one road from a recipe to a published version, whatever its kind.

The recipe's ``kind`` picks the builder: ``documents`` and ``conversations`` are curation's
(``curation.build``), ``preferences`` annotation's (``annotation.ranking.recipe``). Every
builder publishes through the store with the same lineage keys (``cumed.lineage``).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cumed.cli.app import JsonOpt, StoreOpt, app, default_raw, emit, out
from cumed.errors import CumedError
from cumed.recipes import read_recipe
from cumed.store import DatasetVersion, Store

KINDS = ("documents", "conversations", "preferences")


def build_recipe(recipe: str | Path, raw: str | Path, store: Store, *, executor: str = "local", workers: int = 2,
                 work_root: str | Path = ".cache/builds", progress: bool = True,
                 dedup_tasks: int | None = None) -> tuple[DatasetVersion, dict]:
    """Build any recipe in ``datasets/`` and publish it; returns (version, stats)."""
    kind = read_recipe(recipe).kind
    if kind == "preferences":
        from annotation.ranking.recipe import build_preferences

        return build_preferences(recipe, raw, store)
    if kind in ("documents", "conversations"):
        from curation.build import build

        return build(recipe, raw, store, executor=executor, workers=workers, work_root=work_root, progress=progress,
                     dedup_tasks=dedup_tasks)
    raise CumedError(f"recipe {recipe} has kind {kind!r}; cumed build takes {', '.join(KINDS)}")


@app.command("build")
def build_cmd(
    recipe: str = typer.Argument(..., help="Recipe YAML, e.g. datasets/cumed-pretrain.yaml"),
    raw: str = typer.Option(None, "--raw", help="Raw data root, a folder or a URL such as s3://bucket/raw "
                                                "(default: $CUMED_RAW or ../shared/data/raw)."),
    store: str = StoreOpt,
    executor: str = typer.Option("local", "--executor", help="local | ray"),
    workers: int = typer.Option(2, "--workers", help="Parallel tasks."),
    work_dir: str = typer.Option(".cache/builds", "--work", "--work-dir",
                                 help="Where the resumable intermediate files go: a folder, or a URL such as "
                                      "s3://bucket/builds (the stages exchange files only there)."),
    dedup_tasks: int = typer.Option(None, "--dedup-tasks", help="Tasks of the near-duplicate stage (default: one per 500k documents, at least --workers); "
                                    "same decisions for any number, each task holds its share of the signatures."),
    as_json: bool = JsonOpt,
):
    """Build a dataset version from a recipe (documents, conversations or preferences).

    Example: cumed build datasets/cumed-pretrain.yaml --raw ../shared/data/raw --workers 2
    Example: cumed build datasets/cumed-rm.yaml     (DISC-MedLLM rankings -> reward-model pairs)
    Example: cumed build datasets/cumed-pretrain.yaml --raw s3://bucket/raw --work s3://bucket/builds --store s3://bucket/store --executor ray
    """
    dv, stats = build_recipe(recipe, raw or default_raw(), Store(store), executor=executor, workers=workers,
                             work_root=work_dir, progress=not as_json, dedup_tasks=dedup_tasks)
    result = {"ref": dv.ref, "path": str(dv.path), "rows": dv.rows, "removed_rows": dv.removed_rows,
              "kind": dv.kind, "content_hash": dv.content_hash}

    def human():
        if "sources" in stats:
            print_table1(dv.ref, stats)
        elif "splits" in stats and dv.kind == "preferences":
            out.print(f"{dv.rows:,} pairs from {stats.get('rankings')}: "
                      + ", ".join(f"{k} {v['pairs']:,}" for k, v in stats["splits"].items()))
        out.print(f"[bold green]published[/] {dv.ref} -> {dv.path}")

    emit(result, as_json, human)


def print_table1(ref: str, stats: dict) -> None:
    t = Table("category", "source", "read", "kept", "removed", "chars", "MB", "tokens",
              title=f"{ref} (tokens: {stats['tokenizer']})")
    for name, s in sorted(stats["sources"].items(), key=lambda kv: (kv[1]["category"], kv[0])):
        mb = f"{s['bytes'] / 1e6:.2f}" if "bytes" in s else ""
        t.add_row(s.get("category", ""), name, f"{s['read']:,}", f"{s['kept']:,}", f"{s['removed']:,}",
                  f"{s.get('chars', 0):,}", mb, f"{s.get('tokens', 0):,}")
    t.add_row("[bold]total", "", f"{stats['read']:,}", f"{stats['kept']:,}", f"{stats['removed']:,}", "", "", "")
    out.print(t)
    if stats["removed_by_reason"]:
        r = Table("removed by", "documents", title="removal reasons")
        for k, v in sorted(stats["removed_by_reason"].items(), key=lambda kv: -kv[1]):
            r.add_row(k, f"{v:,}")
        out.print(r)
