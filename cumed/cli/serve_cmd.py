"""``cumed serve MODEL_DIR``: an OpenAI-compatible chat server for a local checkpoint.

For local checkpoints and tests (``training/serving.py``); serve for throughput with vLLM or
SGLang. ``cumed.generation.local_server`` runs it as a child process for ``cumed generate
--model-path`` and rejection sampling (a subprocess, so the foundation never imports training).
"""

from __future__ import annotations

import sys

import typer

from cumed.cli.app import JsonOpt, app, emit, err


@app.command("serve")
def serve_cmd(
    model_dir: str = typer.Argument(..., help="Hugging Face checkpoint folder with its tokenizer (chat template)."),
    port: int = typer.Option(8000, "--port", help="Port (0 = a free one, printed at start)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface; beyond 127.0.0.1 needs --api-key-env."),
    name: str = typer.Option(None, "--name", help="Model name in /v1/models (default: the folder's name)."),
    api_key_env: str = typer.Option(None, "--api-key-env", help="Require 'Authorization: Bearer $VAR' on /v1."),
    request_log: str = typer.Option(None, "--request-log", help="Append one JSON line per completion request."),
    delay: float = typer.Option(0.0, "--delay", help="Seconds to wait before each answer (tests of killed clients)."),
    as_json: bool = JsonOpt,
):
    """Serve a checkpoint at /v1/chat/completions.  Example: cumed serve runs/sft/final --port 8000"""
    from training.serving import make_server

    srv = make_server(model_dir, host=host, port=port, name=name, api_key_env=api_key_env,
                      request_log=request_log, delay=delay)
    bound = srv.server_address[1]
    res = {"url": f"http://{host}:{bound}/v1", "port": bound, "model": srv.model_name}
    emit(res, as_json, lambda: err.print(f"serving {srv.model_name} on {res['url']} (Ctrl-C stops)"))
    sys.stdout.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
