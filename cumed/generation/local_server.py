"""``cumed serve CHECKPOINT --port 0`` as a child process: a local checkpoint behind an OpenAI-compatible URL.

Used by ``cumed generate --model-path`` and by rejection sampling's ``generator: local``. The server
is started as a subprocess of the ``cumed`` CLI, so neither the foundation nor ``training`` imports
the other's modules; its stderr goes to a temporary file (a pipe nobody reads could fill and block
the server), and the first stdout line (printed once the port is bound and the model loaded) is
the URL.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from cumed.errors import CumedError

SERVE = [sys.executable, "-c", "from cumed.cli import main; main()", "serve"]


@contextmanager
def serve_checkpoint(policy_dir: str | Path, name: str, request_log: str | Path | None = None, timeout: float = 300.0):
    """Yield the base URL of ``cumed serve POLICY_DIR --port 0`` once the model is loaded; stop it on exit."""
    if not (Path(policy_dir) / "config.json").is_file():
        raise CumedError(f"{policy_dir}: no config.json there; give a checkpoint folder (a run's final/)")
    cmd = [*SERVE, str(policy_dir), "--port", "0", "--name", name, "--json"]
    if request_log:
        cmd += ["--request-log", str(request_log)]
    with tempfile.TemporaryFile(mode="w+") as errf:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, text=True)
        try:
            ready, _, _ = select.select([proc.stdout], [], [], timeout)
            line = proc.stdout.readline() if ready else ""  # printed once the port is bound and the model loaded
            if not line:
                proc.kill()
                proc.wait()
                errf.seek(0)
                why = errf.read()[-500:].strip() or f"no answer in {timeout:.0f} s"
                raise CumedError(f"cumed serve {policy_dir} did not start: {why}")
            yield json.loads(line)["url"]
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
