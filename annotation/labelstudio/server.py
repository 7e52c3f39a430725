"""A local Label Studio server that the project installs, starts, watches and stops.

``cumed labelstudio start`` installs ``label-studio==1.23.2`` into its own virtual
environment on first use (default ``.venv-labelstudio`` in the repository root, override with
``$CUMED_LS_VENV``; it is kept out of the main venv because Label Studio pins an old pyarrow),
then runs ``label-studio start --no-browser --internal-host 127.0.0.1 --port PORT`` with all
state under the data dir (default ``.cache/labelstudio``, override with ``--data-dir``):

- ``<data-dir>/ls-data/``      Label Studio's own data (SQLite database ``label_studio.sqlite3``, uploads);
- ``<data-dir>/labelstudio.env`` ``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY`` (plus the admin
  login for the UI), mode 0600 - ``source`` it, or point ``--ls-token-file`` at it;
- ``<data-dir>/server.json``   pid, port, url (no secrets);
- ``<data-dir>/server.log``    the server's stdout/stderr.

The admin user and its API token are generated on first start and kept in the env file, so a
restart reuses them. The token is never printed, logged or written into manifests.

Secrets stay out of it: the data dir and ``ls-data/`` are mode 0700 and the server runs under
umask 077, so the SQLite file (which holds the API token) and everything else it writes is the
owner's alone (uploads too: ``<data-dir>/settings/`` holds a settings module that is Label
Studio's own plus ``FILE_UPLOAD_PERMISSIONS = 0o600``); and the server gets a minimal environment
(``server_env``): ``PATH``, ``HOME``, ``LANG``/``LC_*``, ``TZ``, ``TMPDIR`` and Label Studio's own
``LABEL_STUDIO_*`` / ``DJANGO_*`` / ``POSTGRE_*`` settings - never the caller's cloud keys
(``AWS_*``), judge or model API keys, HF tokens, ``PYTHONPATH`` and the like.

PostgreSQL instead of the embedded SQLite (for a team sharing one server): Label Studio reads
its database settings from the environment, so export them before ``cumed labelstudio start``
(they are passed through to the server process)::

    export DJANGO_DB=default          # 'sqlite' is the embedded default
    export POSTGRE_NAME=labelstudio POSTGRE_USER=labelstudio POSTGRE_PASSWORD=...
    export POSTGRE_HOST=db.internal POSTGRE_PORT=5432
    cumed labelstudio start --port 8080

A server a team already runs elsewhere needs none of this: set ``LABEL_STUDIO_URL`` and
``LABEL_STUDIO_API_KEY`` (or ``--ls-url`` / ``--ls-token-file``) and the ``labelstudio``
review backend uses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cumed.atomic import replacing
from cumed.errors import CumedError
from cumed.process import pid_alive as _pid_alive

LS_VERSION = "1.23.2"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO_ROOT / ".venv-labelstudio"
DEFAULT_DATA_DIR = Path(".cache") / "labelstudio"
ENV_FILE = "labelstudio.env"
STATE_FILE = "server.json"
LOG_FILE = "server.log"


def venv_path() -> Path:
    return Path(os.environ.get("CUMED_LS_VENV") or DEFAULT_VENV)


def default_data_dir() -> Path:
    return DEFAULT_DATA_DIR


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will; TIME_WAIT is fine
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def read_env_file(path: str | Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` and quotes allowed) into a dict."""
    out: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.removeprefix("export ").split("=", 1)
        out[k.strip()] = v.strip().strip("'\"")
    return out


def _write_private(path: Path, text: str) -> None:
    # Created with mode 0600, so a token is never readable by others, not even for a moment;
    # fchmod then makes it exactly 0600 (the umask may have taken bits away).
    with replacing(path, durable=True, opener=lambda p, flags: os.open(p, flags, 0o600)) as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


# What the server process may see of the caller's environment: the basics a Python process needs
# and Label Studio's own settings. Everything else (cloud credentials, judge/model API keys,
# tokens) stays behind.
# Certificate bundles are kept (a team's Label Studio may reach cloud storage through its own CA);
# proxies are not (their URLs can carry credentials): set them in the server's own env if needed.
_ENV_KEEP = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
             "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
_ENV_KEEP_PREFIXES = ("LC_", "LABEL_STUDIO_", "DJANGO_", "POSTGRE_")
# The client's token: the server has its own (LABEL_STUDIO_USER_TOKEN), it never needs the caller's.
_ENV_DROP = ("LABEL_STUDIO_API_KEY",)
PRIVATE_UMASK = 0o077
# Django chmods every upload to FILE_UPLOAD_PERMISSIONS (default 0o644), whatever the umask; this
# settings module (written into ``<data-dir>/settings/``) is Label Studio's own with uploads private.
SETTINGS_MODULE = "cumed_labelstudio_settings"
_SETTINGS_SOURCE = '''"""Written by cumed (annotation/labelstudio/server.py) at every start: Label Studio's own
settings, with uploaded files and their folders readable by the owner only.

The settings file is executed here rather than imported: it reads ``django.conf.settings`` while it
is being loaded (Sentry set-up), which must find the settings defined so far in this module.
"""
import os as _os

import label_studio as _ls

_path = _os.path.join(_os.path.dirname(_ls.__file__), "core", "settings", "label_studio.py")
with open(_path, encoding="utf-8") as _f:
    exec(compile(_f.read(), _path, "exec"))

FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
'''


def server_env(environ: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment the Label Studio process gets: the allow-listed part of ``environ``
    (default ``os.environ``) plus ``extra``."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items()
           if (k in _ENV_KEEP or k.startswith(_ENV_KEEP_PREFIXES)) and k not in _ENV_DROP}
    env.setdefault("PATH", os.defpath)
    env.update(extra)
    return env


def _private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) and make it exactly 0700, also when it already existed
    with a wider mode (a data dir from before this rule)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _private_files(folder: Path, patterns=("*.sqlite3*", "*.db", ".env")) -> None:
    """Tighten what an older server created under a looser umask to 0600: the SQLite database
    (users, API tokens) and Label Studio's own ``.env`` (its Django SECRET_KEY)."""
    for pattern in patterns:
        for f in folder.glob(pattern):
            if f.is_file() and not f.is_symlink():
                os.chmod(f, 0o600)


def _is_label_studio(pid: int) -> bool:
    """Guard against a recycled pid: only signal a process whose command line is label-studio."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return _pid_alive(pid)  # no /proc (macOS): trust the pid file
    return b"label-studio" in cmd or b"label_studio" in cmd


class LabelStudioServer:
    """Install / start / stop / status of one local server whose state lives in ``data_dir``."""

    def __init__(self, data_dir: str | Path | None = None, venv: str | Path | None = None,
                 host: str = "127.0.0.1"):
        self.data_dir = Path(data_dir or default_data_dir()).absolute()
        self.venv = Path(venv or venv_path()).absolute()
        self.host = host

    # ---- paths ---------------------------------------------------------------------------
    @property
    def env_file(self) -> Path:
        return self.data_dir / ENV_FILE

    @property
    def state_file(self) -> Path:
        return self.data_dir / STATE_FILE

    @property
    def log_file(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def executable(self) -> Path:
        return self.venv / "bin" / "label-studio"

    @property
    def _marker(self) -> Path:
        return self.venv / f".cumed-label-studio-{LS_VERSION}"

    # ---- install -------------------------------------------------------------------------
    def installed(self) -> bool:
        return self._marker.exists() and self.executable.exists()

    def ensure_installed(self, log=None) -> Path:
        """Create the venv and ``pip install label-studio==LS_VERSION`` unless already done."""
        if self.installed():
            return self.executable
        self.venv.parent.mkdir(parents=True, exist_ok=True)
        lock = self.venv.with_name(self.venv.name + ".lock")
        with open(lock, "w") as lf:
            fcntl.flock(lf, fcntl.LOCK_EX)  # two test sessions installing at once
            if self.installed():
                return self.executable
            if log:
                log(f"installing label-studio=={LS_VERSION} into {self.venv} (first use, ~90 s, ~1 GB)")
            py = self.venv / "bin" / "python"
            steps = []
            if not py.exists():
                steps.append([sys.executable, "-m", "venv", str(self.venv)])
            steps.append([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          f"label-studio=={LS_VERSION}"])
            for cmd in steps:
                r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                if r.returncode != 0:
                    tail = " | ".join(l for l in r.stdout.strip().splitlines()[-3:] if l)
                    raise CumedError(
                        f"installing label-studio=={LS_VERSION} into {self.venv} failed ({tail}); "
                        f"check network/pip access, or set CUMED_LS_VENV to a venv that has it")
            self._marker.touch()
        return self.executable

    # ---- state ---------------------------------------------------------------------------
    def _state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _credentials(self) -> dict[str, str]:
        """The admin login + token: generated once, then reused from the env file."""
        old = read_env_file(self.env_file) if self.env_file.exists() else {}
        return {
            "username": old.get("LABEL_STUDIO_USERNAME") or "cumed-admin@localhost",
            "password": old.get("LABEL_STUDIO_PASSWORD") or secrets.token_urlsafe(18),
            "token": old.get("LABEL_STUDIO_API_KEY") or secrets.token_hex(20),
        }

    def _write_env(self, url: str, cred: dict[str, str]) -> None:
        _write_private(self.env_file, (
            "# written by `cumed labelstudio start`; keep private (mode 0600)\n"
            f"LABEL_STUDIO_URL={url}\n"
            f"LABEL_STUDIO_API_KEY={cred['token']}\n"
            f"LABEL_STUDIO_USERNAME={cred['username']}\n"
            f"LABEL_STUDIO_PASSWORD={cred['password']}\n"))

    def healthy(self, url: str | None = None, timeout: float = 2.0) -> bool:
        url = url or self._state().get("url")
        if not url:
            return False
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def status(self) -> dict:
        st = self._state()
        pid = st.get("pid")
        alive = bool(pid) and _pid_alive(pid) and _is_label_studio(pid)
        running = alive and self.healthy(st.get("url"))
        return {
            "status": "running" if running else ("starting" if alive else "stopped"),
            "url": st.get("url"),
            "pid": pid if alive else None,
            "data_dir": str(self.data_dir),
            "env_file": str(self.env_file) if self.env_file.exists() else None,
            "log": str(self.log_file),
            "installed": self.installed(),
        }

    # ---- start / stop --------------------------------------------------------------------
    def start(self, port: int | None = None, timeout: float = 240.0, log=None) -> dict:
        """Start (or find running) and wait until ``/health`` answers. Returns status + ``started``."""
        cur = self.status()
        if cur["status"] == "running":
            return {**cur, "started": False}
        if cur["pid"]:  # alive but not healthy yet (or hung): let it finish starting
            if self._wait_healthy(cur["pid"], cur["url"], timeout):
                return {**self.status(), "started": False}
            self.stop()
        exe = self.ensure_installed(log=log)
        if not port:
            prev = self._state().get("port")
            port = prev if prev and _port_free(self.host, prev) else free_port(self.host)
        elif not self._wait_port_free(port):
            raise CumedError(f"port {port} on {self.host} is in use; pick another with --port, "
                             f"or stop what listens there")
        url = f"http://{self.host}:{port}"
        _private_dir(self.data_dir)
        ls_data = self.data_dir / "ls-data"
        _private_dir(ls_data)
        _private_files(ls_data)
        cred = self._credentials()
        self._write_env(url, cred)
        env = server_env(
            LABEL_STUDIO_USERNAME=cred["username"],
            LABEL_STUDIO_PASSWORD=cred["password"],
            LABEL_STUDIO_USER_TOKEN=cred["token"],
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            LABEL_STUDIO_BASE_DATA_DIR=str(ls_data),
            LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
            COLLECT_ANALYTICS="false", LATEST_VERSION_CHECK="false",
            SENTRY_DSN="", FRONTEND_SENTRY_DSN="")
        env.setdefault("DJANGO_DB", "sqlite")
        if "DJANGO_SETTINGS_MODULE" not in env:  # a caller's own settings module wins
            settings_dir = self.data_dir / "settings"
            _private_dir(settings_dir)
            _write_private(settings_dir / f"{SETTINGS_MODULE}.py", _SETTINGS_SOURCE)
            env.update(DJANGO_SETTINGS_MODULE=SETTINGS_MODULE, PYTHONPATH=str(settings_dir))
        cmd = [str(exe), "start", "--no-browser", "--internal-host", self.host, "--port", str(port),
               "--data-dir", str(ls_data)]
        with open(os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as lf:
            os.fchmod(lf.fileno(), 0o600)  # a log from before this rule, too
            lf.write(f"\n--- cumed: starting label-studio on {url} at {time.ctime()}\n".encode())
            lf.flush()
            # umask 077: the SQLite file (holding the API token), uploads and exports are the owner's alone
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT,
                                    env=env, cwd=str(self.data_dir), start_new_session=True,
                                    umask=PRIVATE_UMASK)
        _write_private(self.state_file, json.dumps(
            {"pid": proc.pid, "port": port, "url": url, "host": self.host, "version": LS_VERSION,
             "started_at": time.time()}))
        if log:
            log(f"starting label-studio on {url} (pid {proc.pid}, log {self.log_file})")
        if not self._wait_healthy(proc.pid, url, timeout, proc=proc):
            alive = proc.poll() is None
            self.stop()
            why = "did not answer /health" if alive else f"exited with code {proc.returncode}"
            raise CumedError(f"Label Studio on {url} {why} within {timeout:.0f} s; "
                             f"see {self.log_file} for the cause")
        return {**self.status(), "started": True}

    def _wait_port_free(self, port: int, timeout: float = 20.0) -> bool:
        """A just-killed server's sockets can hold the port for a moment; Label Studio would then
        silently move to another port, so wait for ours instead."""
        deadline = time.monotonic() + timeout
        while not _port_free(self.host, port):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.25)
        return True

    def _wait_healthy(self, pid: int, url: str, timeout: float, proc=None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return False
            if proc is None and not _pid_alive(pid):
                return False
            if self.healthy(url):
                return True
            time.sleep(0.5)
        return False

    def stop(self, timeout: float = 30.0) -> dict:
        """SIGTERM the server's process group, wait, SIGKILL if it is still there."""
        st = self._state()
        pid = st.get("pid")
        was = bool(pid) and _pid_alive(pid) and _is_label_studio(pid)
        if was:
            self._signal(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _pid_alive(pid):
                self._signal(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while _pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
        # children (if any) share the process group; make sure none keeps the port
        if was:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        if st:
            st["pid"] = None
            _write_private(self.state_file, json.dumps(st))
        return {**self.status(), "stopped": was}

    def kill(self) -> None:
        """SIGKILL without cleanup (tests: a server that dies mid-push)."""
        pid = self._state().get("pid")
        if pid and _pid_alive(pid):
            self._signal(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.05)

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        try:
            os.killpg(pid, sig)  # started with start_new_session: pgid == pid
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
