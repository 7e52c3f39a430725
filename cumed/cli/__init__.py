"""The ``cumed`` command line. ``main`` turns user errors into one line and exit code 1."""

from __future__ import annotations

import sys

import typer

from cumed.errors import CumedError
from cumed.cli.app import app
from cumed.cli import annotate_cmd, build_cmd, datasets_cmd, demo_cmd, eval_cmd, generate_cmd, labelstudio_cmd, lineage_cmd, quality_cmd, rank_cmd, report_cmd, review_cmd, serve_cmd, train_cmd  # noqa: F401,E402 - registers commands
from cumed.cli import train_plan_cmd  # noqa: F401,E402 - registers `cumed train plan` on train_app

try:  # typer >= 0.20 vendors click as typer._click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException


def main(argv: list[str] | None = None) -> int:
    try:
        rc = app(args=argv, standalone_mode=False, prog_name="cumed")
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except CumedError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        sys.exit(1)
    except ClickException as e:
        ctx = getattr(e, "ctx", None)
        where = ctx.command_path if ctx is not None else "cumed"
        print(f"error: {e.format_message()} (see '{where} --help')", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    return 0
