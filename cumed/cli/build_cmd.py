"""``cumed build RECIPE``: run a recipe's pipeline and publish the result."""

from __future__ import annotations

import typer
from rich.table import Table

from curation.build import build
from cumed.store import Store
from cumed.cli.app import JsonOpt, StoreOpt, app, default_raw, emit, out


@app.command("build")
def build_cmd(
    recipe: str = typer.Argument(..., help="Recipe YAML, e.g. datasets/cumed-pretrain.yaml"),
    raw: str = typer.Option(None, "--raw", help="Raw data root (default: $CUMED_RAW or ../shared/data/raw)."),
    store: str = StoreOpt,
    executor: str = typer.Option("local", "--executor", help="local | ray"),
    workers: int = typer.Option(2, "--workers", help="Parallel tasks."),
    work_dir: str = typer.Option(".cache/builds", "--work-dir", help="Where resumable intermediate files go."),
    as_json: bool = JsonOpt,
):
    """Build a dataset version from a recipe.

    Example: cumed build datasets/cumed-pretrain.yaml --raw ../shared/data/raw --workers 2
    """
    dv, stats = build(recipe, raw or default_raw(), Store(store), executor=executor, workers=workers,
                      work_root=work_dir, progress=not as_json)
    result = {"ref": dv.ref, "path": str(dv.path), "rows": dv.rows, "removed_rows": dv.removed_rows}
    def human():
        print_table1(dv.ref, stats)
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
