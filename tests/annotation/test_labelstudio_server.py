"""Secrets and the local Label Studio server: the server process gets a minimal environment (no
cloud, judge or model keys of the caller), and everything under its data dir is the owner's alone
(dirs 0700, files 0600: the SQLite file holds the API tokens; uploads too, through the settings
module the server is started with).

The real-server test starts a second server on a copy of the session server's database (a copy via
SQLite's backup API: a fresh database would spend a minute on migrations), with a data dir laid out
as an older version left it (0755 dirs, a 0644 database) and secrets in the caller's environment;
it reads ``/proc/<pid>/environ`` of every process of the server's session and stats what it wrote,
including a file the server itself writes at run time (an uploaded import).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from annotation.labelstudio.server import LabelStudioServer, free_port, read_env_file

SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIA-cumed-test-leak-1",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-cumed-test-leak-2",
    "AWS_SESSION_TOKEN": "aws-session-cumed-test-leak-3",
    "CUMED_JUDGE_API_KEY": "judge-key-cumed-test-leak-4",
    "CUMED_JUDGE_BASE_URL": "https://judge.invalid/cumed-test-leak-5",
    "OPENAI_API_KEY": "sk-cumed-test-leak-6",
    "ANTHROPIC_API_KEY": "sk-ant-cumed-test-leak-7",
    "HF_TOKEN": "hf_cumed_test_leak_8",
    "HUGGING_FACE_HUB_TOKEN": "hf_cumed_test_leak_9",
    "GITHUB_TOKEN": "ghp_cumed_test_leak_10",
    "LABEL_STUDIO_API_KEY": "client-token-cumed-test-leak-11",  # the client's, not the server's
    "PYTHONPATH": "/nonexistent/cumed-test-leak-12",
}
KEEP = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE")  # certificate bundles: paths, not secrets
KEEP_PREFIXES = ("LC_", "LABEL_STUDIO_", "DJANGO_", "POSTGRE_")
# what the server is started with on top of the caller's allowed variables
SERVER_SET = {"COLLECT_ANALYTICS", "LATEST_VERSION_CHECK", "SENTRY_DSN", "FRONTEND_SENTRY_DSN"}


def allowed(key: str) -> bool:
    return key in KEEP or key.startswith(KEEP_PREFIXES) or key in SERVER_SET


def test_server_env_is_an_allow_list():
    from annotation.labelstudio.server import server_env

    caller = {**SECRETS, "PATH": "/usr/bin", "HOME": "/home/a", "LANG": "zh_CN.UTF-8", "LC_ALL": "C.UTF-8",
              "TMPDIR": "/tmp/x", "TZ": "Asia/Shanghai", "DJANGO_DB": "default", "POSTGRE_HOST": "db",
              "POSTGRE_PASSWORD": "pg", "LABEL_STUDIO_HOST": "http://ls", "SHELL": "/bin/bash",
              "SSH_AUTH_SOCK": "/tmp/agent", "VIRTUAL_ENV": "/work/main/.venv"}
    env = server_env(caller, LABEL_STUDIO_USER_TOKEN="t")
    assert env == {"PATH": "/usr/bin", "HOME": "/home/a", "LANG": "zh_CN.UTF-8", "LC_ALL": "C.UTF-8",
                   "TMPDIR": "/tmp/x", "TZ": "Asia/Shanghai", "DJANGO_DB": "default", "POSTGRE_HOST": "db",
                   "POSTGRE_PASSWORD": "pg", "LABEL_STUDIO_HOST": "http://ls", "LABEL_STUDIO_USER_TOKEN": "t"}
    assert server_env({})["PATH"]  # a PATH even when the caller has none


def _session_pids(leader: int) -> list[int]:
    """The server's process and every process in its session (it runs with start_new_session)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(d.name) == leader or int(fields[3]) == leader:  # fields[3]: session id
            pids.append(int(d.name))
    return sorted(pids)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(kv.split("=", 1) for kv in raw.decode("utf-8", "replace").split("\0") if "=" in kv)


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux)")
def test_real_server_gets_a_minimal_environment_and_a_private_data_dir(ls_server, tmp_path, monkeypatch):
    import httpx

    # a data dir as an older cumed left it: world-readable dirs and database
    data = tmp_path / "ls"
    (data / "ls-data").mkdir(parents=True)
    os.chmod(data, 0o755)
    os.chmod(data / "ls-data", 0o755)
    db = data / "ls-data" / "label_studio.sqlite3"
    src = sqlite3.connect(ls_server.data_dir / "ls-data" / "label_studio.sqlite3")
    dst = sqlite3.connect(db)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    os.chmod(db, 0o644)
    shutil.copy(ls_server.env_file, data / "labelstudio.env")  # same admin and token as in the database
    os.chmod(data / "labelstudio.env", 0o600)

    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("LANG", "C.UTF-8")
    old_umask = os.umask(0o022)  # the usual umask: the server must not depend on the caller's
    srv = LabelStudioServer(data)
    try:
        st = srv.start(port=free_port())
        assert st["status"] == "running", st
        pids = _session_pids(st["pid"])
        assert st["pid"] in pids
        for pid in pids:
            env = _environ(pid)
            raw = Path(f"/proc/{pid}/environ").read_bytes()
            leaked = [k for k in env if not allowed(k) and k != "PYTHONPATH"]
            assert not leaked, f"pid {pid} got {leaked}"
            assert not [v for v in SECRETS.values() if v.encode() in raw], f"pid {pid} sees a secret value"
            assert not any(k.startswith("AWS_") for k in env)
            # PYTHONPATH: only the folder of the settings module the server writes for itself
            assert env.get("PYTHONPATH") == str(data / "settings")
            assert env.get("DJANGO_SETTINGS_MODULE") == "cumed_labelstudio_settings"
            assert env["LANG"] == "C.UTF-8" and env["LABEL_STUDIO_BASE_DATA_DIR"] == str(data / "ls-data")
            assert env.get("LABEL_STUDIO_USER_TOKEN")  # what it needs, it gets

        # the server works in that environment, and a file it writes at run time is private too
        creds = read_env_file(srv.env_file)
        headers = {"Authorization": f"Token {creds['LABEL_STUDIO_API_KEY']}"}
        with httpx.Client(base_url=st["url"], headers=headers, timeout=60) as http:
            project = http.post("/api/projects/", json={"title": "cumed umask test",
                                                        "label_config": "<View><Text name='t' value='$text'/></View>"})
            assert project.status_code == 201, project.text
            pid_ = project.json()["id"]
            up = http.post(f"/api/projects/{pid_}/import",
                           files={"file": ("tasks.json", json.dumps([{"text": "患者主诉头痛"}]), "application/json")})
            assert up.status_code == 201, up.text
    finally:
        os.umask(old_umask)
        srv.stop()

    assert _mode(data) == 0o700 and _mode(data / "ls-data") == 0o700
    assert _mode(db) == 0o600
    uploads = [p for p in (data / "ls-data" / "media").rglob("*") if p.is_file()]
    assert uploads, "the import wrote no file under media/"
    loose = {str(p.relative_to(data)): oct(_mode(p)) for p in data.rglob("*")
             if not p.is_symlink() and _mode(p) & 0o077}
    assert not loose, f"readable by group/others: {loose}"
