"""``cumed datasets list|show|verify|diff|export|gc``."""

from __future__ import annotations

import json
import sys

import typer
from rich.table import Table

from cumed.errors import CumedError
from cumed.exports import export as run_export
import training.exports  # noqa: F401 - registers the training engines' formats (llamafactory, trl, megatron)
from cumed.store import Store, open_ref
from cumed.cli.app import JsonOpt, StoreOpt, datasets_app, emit, out


def _open(store: str | None) -> Store:
    return Store(store, create=False)


@datasets_app.command("list")
def list_cmd(store: str = StoreOpt, as_json: bool = JsonOpt):
    """List every complete version.  Example: cumed datasets list --store ./store"""
    rows = _open(store).list()

    def human():
        t = Table("ref", "kind", "rows", "removed", "created")
        for r in rows:
            t.add_row(r["ref"], r["kind"], f"{r['rows']:,}" if r["rows"] is not None else r.get("error", "?"),
                      f"{r['removed_rows']:,}" if r["removed_rows"] is not None else "", r.get("created_at", ""))
        out.print(t if rows else "no datasets yet: run `cumed demo` or `cumed build datasets/cumed-pretrain.yaml`")

    emit({"datasets": rows}, as_json, human)


@datasets_app.command("show")
def show_cmd(ref: str, store: str = StoreOpt, as_json: bool = JsonOpt):
    """Manifest summary and per-source stats.  Example: cumed datasets show cumed-pretrain@1"""
    st, ref = open_ref(ref, store)
    dv = st.get(ref)
    m = dv.manifest

    def human():
        out.print(f"[bold]{dv.ref}[/]  kind={dv.kind}  rows={dv.rows:,}  removed={dv.removed_rows:,}")
        out.print(f"path: {dv.path}\ncreated: {m.get('created_at')}\ncontent hash: {dv.content_hash}")
        lin = m.get("lineage", {})
        if lin.get("parents"):
            out.print(f"parents: {', '.join(lin['parents'])}")
        if lin.get("recipe"):
            out.print(f"recipe: {lin['recipe']}")
        per_source = (m.get("stats") or {}).get("sources") or {}
        if per_source:
            cols = ["source", "category", "read", "kept", "removed", "chars", "bytes", "tokens"]
            t = Table(*cols, title=f"per source (tokens: {(m.get('stats') or {}).get('tokenizer', '?')})")
            for src, s in per_source.items():
                t.add_row(src, *(f"{s.get(c, ''):,}" if isinstance(s.get(c), int) else str(s.get(c, "")) for c in cols[1:]))
            out.print(t)
        reasons = (m.get("stats") or {}).get("removed_by_reason") or {}
        if reasons:
            t = Table("removed by", "rows", title="removal reasons")
            for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]):
                t.add_row(k, f"{v:,}")
            out.print(t)

    emit(m, as_json, human)


@datasets_app.command("verify")
def verify_cmd(ref: str, store: str = StoreOpt, as_json: bool = JsonOpt):
    """Recompute every sha256 and row count.  Example: cumed datasets verify cumed-pretrain@latest"""
    st, ref = open_ref(ref, store)
    res = st.verify(ref)
    emit(res.to_dict(), as_json, lambda: out.print(
        f"{res.ref}: ok ({res.checked} files)" if res.ok else f"{res.ref}: FAILED: {res.file}: {res.problem}"))
    if not res.ok:
        if not as_json:
            print(f"error: {res.ref} failed verification at {res.file} ({res.problem}); re-publish or restore that version", file=sys.stderr)
        raise typer.Exit(1)


@datasets_app.command("diff")
def diff_cmd(a: str, b: str, store: str = StoreOpt, as_json: bool = JsonOpt):
    """Compare two versions.  Example: cumed datasets diff cumed-pretrain@1 cumed-pretrain@2"""
    d = _open(store).diff(a, b)
    emit(d, as_json, lambda: out.print_json(json.dumps(d, ensure_ascii=False)))


@datasets_app.command("export")
def export_cmd(
    ref: str,
    fmt: str = typer.Option(..., "--format", help="jsonl | parquet | csv | (training formats when installed)"),
    out_dir: str = typer.Option(..., "--out", help="Output folder (created)."),
    tokenizer: str = typer.Option(None, "--tokenizer", show_default=False,
                                  help="tokenizer.json or its folder, for formats that write token ids (megatron); "
                                       "default $CUMED_MEGATRON_TOKENIZER, else OUT/tokenizer.json."),
    store: str = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Export a version.

    Example: cumed datasets export cumed-pretrain@1 --format jsonl --out exports/
    Example: cumed datasets export cumed-pretrain@1 --format megatron --tokenizer tokenizers/cumed-8k --out exports/
    """
    st, ref = open_ref(ref, store)
    dv = st.get(ref)
    if getattr(dv, "fs", None) is not None:  # a remote version: exporters read local files, pull it first
        pulled = st.pull(ref, progress=not as_json)
        dv = Store(pulled["store"]).get(dv.ref)
    res = run_export(dv, fmt, out_dir, tokenizer=tokenizer)
    emit(res, as_json, lambda: out.print(f"exported {res['rows']:,} rows of {res['ref']} as {fmt} to {res['out']}"))


@datasets_app.command("gc")
def gc_cmd(
    store: str = StoreOpt,
    min_age: float = typer.Option(None, "--min-age", show_default=False,
                                  help="Only remove debris older than this many seconds (local default 0, s3:// default 3600)."),
    as_json: bool = JsonOpt,
):
    """Remove leftovers of crashed publishes.  Example: cumed datasets gc --store s3://team-bucket/store"""
    st = _open(store)
    removed = st.gc() if min_age is None else st.gc(min_age_s=min_age)
    emit({"removed": removed}, as_json, lambda: out.print(f"removed {len(removed)} abandoned temp folder(s) / unfinished version(s)"))


__all__ = ["CumedError"]


@datasets_app.command("publish")
def publish_cmd(
    name: str,
    data: str = typer.Option(..., "--from", help="Parquet file or folder with the rows."),
    kind: str = typer.Option("documents", "--kind", help="documents | conversations | rankings | preferences"),
    removed: str = typer.Option(None, "--removed", help="Parquet file or folder of removed rows (with removed_by, reason)."),
    store: str = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Publish existing Parquet rows as a new version.  Example: cumed datasets publish my-docs --from rows.parquet"""
    from pathlib import Path

    for label, p in (("--from", data), ("--removed", removed)):
        if p is not None and not Path(p).exists():
            raise CumedError(f"{label} {p} does not exist; give a Parquet file or a folder of Parquet files")
    dv = Store(store).publish(name, data, kind=kind, removed=removed)
    res = {"ref": dv.ref, "path": str(dv.path), "rows": dv.rows, "removed_rows": dv.removed_rows}
    emit(res, as_json, lambda: out.print(f"published {dv.ref} ({dv.rows:,} rows) -> {dv.path}"))


def _remote(store: str | Store | None, what: str):
    from cumed.store.s3 import RemoteStore

    st = store if isinstance(store, Store) else _open(store)
    if not isinstance(st, RemoteStore):
        raise CumedError(f"{what} needs an s3:// store; pass --store s3://BUCKET/PREFIX or a full s3://BUCKET/PREFIX/NAME@N reference")
    return st


@datasets_app.command("pull")
def pull_cmd(
    ref: str,
    to: str = typer.Option(None, "--to", help="Local store root to pull into (default: $CUMED_CACHE or ~/.cache/cumed/store/<bucket>/<prefix>)."),
    store: str = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Download a version from an s3:// store, verifying every sha256; resumes an interrupted pull.

    Example: cumed datasets pull cumed-pretrain@3 --store s3://team-bucket/store --to ./store
    """
    st, ref = open_ref(ref, store)
    res = _remote(st, "pull").pull(ref, to, progress=not as_json)
    emit(res, as_json, lambda: out.print(
        f"pulled {res['ref']} -> {res['path']} ({res['downloaded']} file(s) downloaded, {res['skipped']} already present, all sha256 verified)"))


@datasets_app.command("push")
def push_cmd(
    ref: str,
    to: str = typer.Option(..., "--to", help="Target s3://BUCKET/PREFIX store."),
    store: str = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Promote a local version to an s3:// store with identical files and hashes.

    Example: cumed datasets push cumed-pretrain@3 --store ./store --to s3://team-bucket/store
    """
    local = _open(store).get(ref)
    if getattr(local, "fs", None) is not None:
        raise CumedError("push copies a LOCAL version: point --store at a local store (the source) and --to at s3://...")
    remote = _remote(to, "push")
    dv = remote.push(local, progress=not as_json)
    res = {"ref": dv.ref, "from": local.ref, "path": dv.path, "rows": dv.rows, "content_hash": dv.content_hash,
           **(remote.last_push or {"resumed": False, "uploaded": 0, "skipped": []})}  # none: already there
    emit(res, as_json, lambda: out.print(f"pushed {local.ref} -> {dv.path} ({dv.ref}, {dv.rows:,} rows)"))
