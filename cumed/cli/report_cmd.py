"""``cumed report REF``: a static HTML report with plots."""

from __future__ import annotations

from pathlib import Path

import typer

from curation.report import write_report
from cumed.store import open_ref
from cumed.cli.app import JsonOpt, StoreOpt, app, emit, out


@app.command("report")
def report_cmd(
    ref: str = typer.Argument(..., help="Dataset reference, e.g. cumed-pretrain@1"),
    out_path: str = typer.Option(None, "--out", help="HTML file (default: reports/<name>-v<N>.html)."),
    store: str = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Write an HTML report (Table-1 counts, removal reasons, length and duplicate plots).

    Example: cumed report cumed-pretrain@latest --out reports/pretrain.html
    """
    st, ref = open_ref(ref, store)
    dv = st.get(ref)
    path = write_report(dv, out_path or Path("reports") / f"{dv.name}-v{dv.version}.html")
    emit({"ref": dv.ref, "report": str(path)}, as_json, lambda: out.print(f"report for {dv.ref}: {path}"))
