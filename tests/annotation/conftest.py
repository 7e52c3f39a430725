"""A real Label Studio server for the session: installed on first use (own venv, ~90 s), started on
127.0.0.1 on a free port (~6 s warm, ~35 s first time), stopped at the end.

State lives in ``.cache/labelstudio-test`` (override ``CUMED_LS_TEST_DATA_DIR``) so later runs start
warm; every test uses its own dataset name, so leftovers from earlier runs never collide.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ls_server():
    from annotation.labelstudio.server import LabelStudioServer, free_port

    data_dir = Path(os.environ.get("CUMED_LS_TEST_DATA_DIR") or REPO / ".cache" / "labelstudio-test")
    srv = LabelStudioServer(data_dir)
    srv.stop()  # a server left over from an interrupted run
    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    st = srv.start(port=free_port(), log=log)
    assert st["status"] == "running", st
    yield srv
    srv.stop()


@pytest.fixture()
def ls_env(ls_server):
    """(url, token) of the session server."""
    from annotation.labelstudio.server import read_env_file

    env = read_env_file(ls_server.env_file)
    return env["LABEL_STUDIO_URL"], env["LABEL_STUDIO_API_KEY"]


@pytest.fixture()
def backend_factory(ls_server, tmp_path):
    from annotation.labelstudio.backend import LabelStudioBackend

    def make(**kw):
        kw.setdefault("cache_dir", tmp_path / "cache")
        return LabelStudioBackend(token_file=ls_server.env_file, **kw)
    return make


@pytest.fixture()
def dataset():
    return f"t-{uuid.uuid4().hex[:10]}"
