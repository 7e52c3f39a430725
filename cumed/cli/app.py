"""Root typer app and the output helpers every command shares.

Human output goes to stdout as rich tables; progress to stderr; with ``--json`` stdout carries
exactly one JSON object so scripts never parse human text.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    name="cumed",
    help="Versioned, auditable Chinese medical training datasets (the CUMed-LLaMA pipeline).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
datasets_app = typer.Typer(help="Inspect, check and export published dataset versions.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")

# Wide enough for Table-1 rows when stdout is a file or a pipe (rich would default to 80).
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

StoreOpt = typer.Option(None, "--store", help="Store root (default: $CUMED_STORE or ./store).", show_default=False)
JsonOpt = typer.Option(False, "--json", help="Print exactly one JSON object on stdout.")


def default_raw() -> str:
    """``--raw`` default: $CUMED_RAW, else ../shared/data/raw beside the working directory."""
    return os.environ.get("CUMED_RAW") or str(Path("..") / "shared" / "data" / "raw")


def emit(result: dict, as_json: bool, human=None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")
    elif human is not None:
        human()
    else:
        for k, v in result.items():
            out.print(f"[bold]{k}[/]: {v}")
