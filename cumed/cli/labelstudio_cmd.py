"""``cumed labelstudio start|stop|status``: a local Label Studio server for manual review.

The token is never printed: ``start`` names the env file (mode 0600) that holds
``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY``.
"""

from __future__ import annotations

import typer

from cumed.cli.app import JsonOpt, app, emit, err, out

labelstudio_app = typer.Typer(help="Run a local Label Studio server for manual review.", no_args_is_help=True)
app.add_typer(labelstudio_app, name="labelstudio")

DataDirOpt = typer.Option(None, "--data-dir",
                          help="Server state dir (default: .cache/labelstudio).", show_default=False)


def _server(data_dir: str | None):
    from annotation.labelstudio.server import LabelStudioServer
    return LabelStudioServer(data_dir)


def _public(st: dict) -> dict:
    keys = ("status", "url", "pid", "env_file", "data_dir", "log", "installed", "started", "stopped")
    return {k: st[k] for k in keys if k in st}


@labelstudio_app.command("start")
def start_cmd(port: int = typer.Option(0, "--port", help="Port on 127.0.0.1 (default: last one, else a free one)."),
              data_dir: str = DataDirOpt,
              timeout: float = typer.Option(240.0, "--timeout", help="Seconds to wait for /health."),
              as_json: bool = JsonOpt):
    """Install (first use) and start Label Studio on 127.0.0.1.  Example: cumed labelstudio start --port 8080"""
    srv = _server(data_dir)
    st = _public(srv.start(port=port or None, timeout=timeout, log=lambda m: err.print(m)))

    def human():
        verb = "started" if st.get("started") else "already running"
        out.print(f"Label Studio {verb} at [bold]{st['url']}[/] (pid {st['pid']})")
        out.print(f"credentials: {st['env_file']} (LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY, UI login)")
        out.print(f"use it:  set -a; . {st['env_file']}; set +a")

    emit(st, as_json, human)


@labelstudio_app.command("stop")
def stop_cmd(data_dir: str = DataDirOpt, as_json: bool = JsonOpt):
    """Stop the local server (SIGTERM, then SIGKILL after 30 s).  Example: cumed labelstudio stop"""
    st = _public(_server(data_dir).stop())
    emit(st, as_json, lambda: out.print("stopped" if st.get("stopped") else "not running"))


@labelstudio_app.command("status")
def status_cmd(data_dir: str = DataDirOpt, as_json: bool = JsonOpt):
    """Report running/stopped, URL and env file.  Example: cumed labelstudio status --json"""
    st = _public(_server(data_dir).status())

    def human():
        if st["status"] == "running":
            out.print(f"running at [bold]{st['url']}[/] (pid {st['pid']}); credentials: {st['env_file']}")
        else:
            out.print(f"{st['status']}; start it with `cumed labelstudio start`")

    emit(st, as_json, human)
