"""``cumed lineage TARGET``: raw files -> versions -> checkpoints, as a tree or one JSON object."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.tree import Tree

from cumed.cli.app import JsonOpt, StoreOpt, app, emit, out
from cumed.provenance import summary, trace

STYLE = {"ok": "green", "seen": "dim", "changed": "bold red", "missing": "bold red"}


def _label(n: dict) -> str:
    role = f"[cyan]{escape(n['role'])}[/]: " if n.get("role") else ""
    kind, status = n["kind"], n["status"]
    if kind == "checkpoint":
        what = f"[bold]checkpoint[/] {escape(n['id'])}"
        if n.get("stage"):
            what += f"  stage={n['stage']} engine={n.get('engine')}"
        what += f"  sha256 {(n.get('sha256') or '?')[:16]}"
    elif kind in ("dataset", "model"):
        what = f"[bold]{kind}[/] {escape(n['id'])}"
        if n.get("kind_of"):
            what += f"  ({n['kind_of']}, {n.get('rows', 0):,} rows)"
        what += f"  content {(n.get('content_hash') or '?')[:16]}"
        if n.get("recipe"):
            what += f"  recipe {escape(str(n['recipe'].get('name')))}"
    elif kind == "tokenizer":
        what = f"[bold]tokenizer[/] {escape(str(n.get('path')))}  sha256 {(n.get('sha256') or '?')[:16]}"
    elif kind == "raw":
        what = f"raw {escape(str(n['id']))}  sha256 {n.get('sha256')}"
    else:
        what = f"{kind} {escape(str(n['id']))}"
    if n.get("see_above"):
        what += "  [dim](see above)[/]"
    flag = ""
    if status not in ("ok", "seen"):  # first on the line: a long label never hides it
        flag = f"[{STYLE.get(status, 'yellow')}]{status.upper()}[/] "
        if n.get("note"):
            what += f"  [dim]{escape(n['note'])}[/]"
    return flag + role + what


def _tree(n: dict, into: Tree | None = None) -> Tree:
    t = Tree(_label(n)) if into is None else into.add(_label(n))
    for c in n.get("children") or []:
        _tree(c, t)
    return t


@app.command("lineage")
def lineage_cmd(
    target: str = typer.Argument(..., help="A checkpoint folder (runs/<stage>-*/final) or a dataset reference NAME@N."),
    store: str = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Everything a checkpoint or version came from, down to the raw files and their sha256.

    Each checkpoint's sha256 is recomputed and compared with the one its child recorded; each
    version's content hash with the one a checkpoint recorded (CHANGED when they differ).

    Example: cumed lineage runs/rs-20250101-120000-000000/final --store ./store
    """
    tree = trace(target, store)
    result = {"target": target, "root": tree, "summary": summary(tree)}

    def human():
        out.print(_tree(tree), soft_wrap=False)  # wrap long labels (hashes, paths), never crop them
        s = result["summary"]
        out.print("  ".join(f"{k}: {v}" for k, v in sorted(s["counts"].items())))
        for p in s["problems"]:
            out.print(f"[bold red]{p['status']}[/]: {p['kind']} {escape(str(p['id']))}")

    emit(result, as_json, human)
