"""``cumed review pull BATCH`` finds the batch's backend in the batch itself (its ``batch.json``
records the backend and the server it was pushed to): no ``--backend labelstudio``, no URL. Against
the session's real Label Studio server, through the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from annotation.labelstudio.backend import LabelStudioBackend
from annotation.labelstudio.server import read_env_file
from annotation.review.config import result_items
from annotation.review.file_backend import FileBackend
from annotation.review.queue import push
from cumed.store import Store
from tests.cumed.test_store import docs_table


def cumed(args: list[str], cwd, **env):
    """The CLI with none of the caller's LABEL_STUDIO_* variables, plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LABEL_STUDIO_")}
    p = subprocess.run([sys.executable, "-c", "from cumed.cli import main; main()", *args],
                       capture_output=True, text=True, timeout=300, cwd=cwd, env={**clean, **env})
    return p


def test_review_pull_without_backend_uses_the_batch_s_server(ls_server, dataset, tmp_path):
    creds = read_env_file(ls_server.env_file)
    store = Store(tmp_path / "store")
    store.publish(dataset, docs_table(6))
    backend = LabelStudioBackend(token_file=ls_server.env_file, cache_dir=tmp_path / "cache")
    res = push(store, f"{dataset}@1", 4, lambda d: backend, seed=3)
    batch = res["batch"]
    info = json.loads((store.root / "_review" / dataset / batch / "batch.json").read_text(encoding="utf-8"))
    assert info["backend"] == "labelstudio" and info["push"]["url"] == creds["LABEL_STUDIO_URL"]
    by_doc = {t["data"]["doc_id"]: t["id"] for t in backend.pull(batch, dataset)}
    docs = sorted(by_doc)
    backend.client.annotations.create(id=by_doc[docs[0]], result=result_items("discard", "privacy"))
    backend.client.annotations.create(id=by_doc[docs[1]], result=result_items("keep"))
    cwd = tmp_path / "work"
    cwd.mkdir()
    pull = ["review", "pull", batch, "--store", str(store.root), "--json"]

    # the token from the environment, the server from the batch
    p = cumed(pull, cwd, LABEL_STUDIO_API_KEY=creds["LABEL_STUDIO_API_KEY"])
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert (out["new_decisions"], out["decisions"], out["problems"]) == (2, 2, []), out

    # the token from a file
    p = cumed([*pull, "--ls-token-file", str(ls_server.env_file)], cwd)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["decisions"] == 2

    # no token given: the local server's env file (cumed labelstudio start's default place) serves
    # the batch's URL, so its token is used
    local = cwd / ".cache" / "labelstudio"
    local.mkdir(parents=True, exist_ok=True)  # the pull cache (checkpoints) already made it
    shutil.copy(ls_server.env_file, local / "labelstudio.env")
    p = cumed(pull, cwd)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["decisions"] == 2

    # ... but never a token that belongs to another server
    (local / "labelstudio.env").write_text(
        f"LABEL_STUDIO_URL=http://127.0.0.1:1\nLABEL_STUDIO_API_KEY={creds['LABEL_STUDIO_API_KEY']}\n")
    p = cumed(pull, cwd)
    assert p.returncode != 0 and "no API token" in p.stderr, p.stderr
    assert creds["LABEL_STUDIO_API_KEY"] not in p.stdout + p.stderr

    # --from an export: read the file, whatever the batch's backend (no server, no token needed)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(backend.pull(batch, dataset), ensure_ascii=False), encoding="utf-8")
    p = cumed([*pull, "--from", str(export)], cwd)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["decisions"] == 2


def test_review_pull_of_a_file_batch_still_asks_for_the_export(tmp_path):
    store = Store(tmp_path / "store")
    store.publish("docs", docs_table(4))
    res = push(store, "docs@1", 2, lambda d: FileBackend(d), seed=0)
    p = cumed(["review", "pull", res["batch"], "--store", str(store.root)], tmp_path)
    assert p.returncode != 0 and "--from" in p.stderr, p.stderr
