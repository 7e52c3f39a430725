"""Pushes to a real Label Studio server (session fixture in conftest.py) that are cut short or race:
the client killed mid-push, the server killed mid-push, a client that timed out while the server
still imported, two clients at once. Every time the project ends with the batch's tasks, each once."""

from __future__ import annotations

import json
import multiprocessing
import signal
import subprocess
import sys
import threading

import httpx
import pytest

from annotation.labelstudio.backend import LabelStudioBackend
from annotation.ranking.queue import RankState
from annotation.review.config import LABEL_CONFIG
from annotation.review.queue import ReviewState, push
from cumed.errors import CumedError
from cumed.store import Store
from tests.annotation.test_labelstudio import project_doc_ids, tasks_for
from tests.annotation.test_ranking import candidates_table
from tests.cumed.test_store import docs_table

CLI = "from cumed.cli import main; main()"
# The client process dies (SIGKILL) right after its first chunk of tasks reached the server.
DIE_AFTER_FIRST_CHUNK = """
import os, signal, sys
from label_studio_sdk.projects.client import ProjectsClient
from annotation.labelstudio.backend import LabelStudioBackend
real_import, real_init = ProjectsClient.import_tasks, LabelStudioBackend.__init__
def import_then_die(self, *a, **kw):
    real_import(self, *a, **kw)
    os.kill(os.getpid(), signal.SIGKILL)
def small_chunks(self, *a, **kw):
    real_init(self, *a, **kw)
    self.chunk_size = 4
ProjectsClient.import_tasks, LabelStudioBackend.__init__ = import_then_die, small_chunks
from cumed.cli import main
main(sys.argv[1:])
"""


def run(code: str, *args):
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_rank_push_client_killed_midway_is_finished_by_the_next_push(ls_server, backend_factory, dataset, tmp_path):
    st = Store(tmp_path / "store")
    st.publish(dataset, candidates_table(12), kind="rankings")
    common = ["--store", str(st.root), "--backend", "labelstudio", "--ls-token-file", str(ls_server.env_file), "--json"]
    p = run(DIE_AFTER_FIRST_CHUNK, "rank", "push", f"{dataset}@1", "--n", "10", "--k", "4", *common)
    assert p.returncode == -signal.SIGKILL, p.stderr
    state = RankState(st, dataset)
    [batch] = state.batches()
    info = state.batch(batch)
    assert info["state"] == "created" and len(info["prompts"]) == 10
    b = backend_factory(task_type="ranking")
    assert len(project_doc_ids(b, dataset)) == 4  # the first chunk only

    p = run(CLI, "rank", "push", f"{dataset}@1", "--n", "10", "--k", "4", *common)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["batch"] == batch and state.batches() == [batch]  # the same batch, no other prompts
    ids = project_doc_ids(b, dataset)
    assert sorted(ids) == sorted(info["prompts"])  # the batch's prompts, each exactly once
    assert (res["resumed"], res["pushed"], res["skipped"]) == (True, 6, 4)
    assert state.batches() == [batch] and state.batch(batch)["state"] == "pushed"


def test_review_push_server_killed_midway_rerun_imports_exactly_the_missing(ls_server, backend_factory, dataset,
                                                                             tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    store.publish(dataset, docs_table(300))
    b = backend_factory(chunk_size=50)
    real_import, calls = b.client.projects.import_tasks, []

    def import_then_server_dies(**kw):
        calls.append(1)
        if len(calls) == 3:  # SIGKILL the server while this chunk's request is in flight
            threading.Thread(target=ls_server.kill).start()
        return real_import(**kw)

    monkeypatch.setattr(b.client.projects, "import_tasks", import_then_server_dies)
    with pytest.raises(CumedError, match="re-run"):
        push(store, f"{dataset}@1", 200, lambda d: b, seed=1)
    b.close()
    monkeypatch.undo()
    state = ReviewState(store, dataset)
    [batch] = state.batches()
    info = state.batch(batch)
    assert info["state"] == "created" and len(info["doc_ids"]) == 200

    port = int(ls_server.status()["url"].rsplit(":", 1)[1])
    assert ls_server.start(port=port)["status"] == "running"
    b2 = backend_factory(chunk_size=50)
    present = project_doc_ids(b2, dataset)
    assert 100 <= len(present) < 200 and len(set(present)) == len(present)
    res = push(store, f"{dataset}@1", 7, lambda d: b2, seed=2)  # other n and seed: the batch is finished first
    assert (res["batch"], res["resumed"], res["pushed"], res["skipped"]) == (batch, True, 200 - len(present),
                                                                             len(present))
    ids = project_doc_ids(b2, dataset)
    assert sorted(ids) == sorted(info["doc_ids"])
    assert state.batches() == [batch] and state.batch(batch)["state"] == "pushed"


def test_review_push_client_timeout_while_the_server_imports_leaves_no_duplicates(backend_factory, dataset, tmp_path,
                                                                                   monkeypatch):
    store = Store(tmp_path / "store")
    store.publish(dataset, docs_table(40))
    b = backend_factory()
    real_import, late = b.client.projects.import_tasks, {}

    def import_late_and_time_out(**kw):
        # the request reached the server, which commits it only later; the client gave up first
        late["go"] = go = threading.Event()
        late["thread"] = t = threading.Thread(target=lambda: (go.wait(60), real_import(**kw)))
        t.start()
        raise httpx.ReadTimeout("timed out")

    monkeypatch.setattr(b.client.projects, "import_tasks", import_late_and_time_out)
    with pytest.raises(CumedError, match="timed out"):
        push(store, f"{dataset}@1", 20, lambda d: b, seed=1)
    monkeypatch.undo()
    state = ReviewState(store, dataset)
    [batch] = state.batches()

    b2 = backend_factory()
    real_list = b2.client.tasks.list

    def list_then_the_late_import_lands(**kw):
        page = real_list(**kw)  # the re-run sees none of the tasks yet...
        if not late["go"].is_set():
            late["go"].set()  # ...then the server commits the first request
            late["thread"].join()
        return page

    monkeypatch.setattr(b2.client.tasks, "list", list_then_the_late_import_lands)
    res = push(store, f"{dataset}@1", 20, lambda d: b2, seed=1)
    assert res["batch"] == batch and res["resumed"]
    ids = project_doc_ids(b2, dataset)
    assert sorted(ids) == sorted(state.batch(batch)["doc_ids"])  # each exactly once
    assert res["duplicates_removed"] == 20 and res["pushed"] + res["skipped"] == 20
    assert {t["data"]["batch"] for t in b2.pull(batch, dataset)} == {batch}


def _client(env_file: str, cache: str, dataset: str, start, meet, out: str) -> None:
    """One client process pushing the same tasks. ``meet`` makes the race certain: both clients list
    the projects (none yet) and then the tasks before either creates or imports anything."""
    from label_studio_sdk.projects.client import ProjectsClient
    from label_studio_sdk.tasks.client import TasksClient

    def meet_after_first(real):
        done = []

        def wrapper(self, *a, **kw):
            res = real(self, *a, **kw)
            if not done:
                done.append(1)
                try:
                    meet.wait(timeout=10)
                except threading.BrokenBarrierError:
                    pass
            return res
        return wrapper

    ProjectsClient.list = meet_after_first(ProjectsClient.list)
    TasksClient.list = meet_after_first(TasksClient.list)
    b = LabelStudioBackend(token_file=env_file, cache_dir=cache)
    start.wait(timeout=120)
    res = b.push("c1", dataset, tasks_for(30), LABEL_CONFIG)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(res, f)


def test_two_clients_pushing_at_once_converge_on_one_project_and_one_task_per_doc(ls_server, backend_factory,
                                                                                   dataset, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    start, meet = ctx.Barrier(2), ctx.Barrier(2)
    outs = [tmp_path / f"client-{i}.json" for i in range(2)]
    procs = [ctx.Process(target=_client, args=(str(ls_server.env_file), str(tmp_path / f"cache{i}"), dataset, start,
                                               meet, str(o))) for i, o in enumerate(outs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0, 0]
    results = [json.loads(o.read_text(encoding="utf-8")) for o in outs]
    b = backend_factory()
    title = b.project_title(dataset)
    projects = sorted(p.id for p in b.client.projects.list(title=title, page_size=100) if p.title == title)
    # both clients queued into the lowest-id project; one the race left over holds nothing
    assert {r["project"] for r in results} == {projects[0]} == {b.find_project(dataset)}
    assert all(b.client.projects.get(id=p).task_number == 0 for p in projects[1:])
    ids = project_doc_ids(b, dataset)
    assert sorted(ids) == sorted(f"d{i}" for i in range(30))
    assert sum(r["pushed"] for r in results) == 30
