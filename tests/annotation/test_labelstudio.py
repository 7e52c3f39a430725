"""The Label Studio server the project starts, and the ``labelstudio`` review backend, against a real server."""

from __future__ import annotations

import copy
import json
import os
import stat
import subprocess
import sys
import threading

import pytest

from annotation.labelstudio.backend import LabelStudioBackend, write_tasks
from annotation.labelstudio.server import free_port
from annotation.review.config import LABEL_CONFIG, result_items
from annotation.review.decisions import parse_tasks
from cumed.errors import CumedError


def tasks_for(n: int, prefix: str = "d", text=None) -> list[dict]:
    return [{"data": {"doc_id": f"{prefix}{i}", "text": text or f"患者主诉头痛 {i}", "meta": "来源 source: t"}}
            for i in range(n)]


def cumed(*args):
    p = subprocess.run([sys.executable, "-c", "from cumed.cli import main; main()", *args],
                       capture_output=True, text=True, timeout=300)
    return p


def project_doc_ids(b: LabelStudioBackend, dataset: str) -> list[str]:
    """Every task's doc_id in the dataset's project (duplicates kept, to catch double imports)."""
    pid = b.find_project(dataset)
    out = []
    for _, items in b._pages(pid, "test", fields="task_only"):
        out += [t.data["doc_id"] for t in items]
    return out


# ---- server -------------------------------------------------------------------------------------

def test_server_running_env_file_private_and_token_never_printed(ls_server):
    env_file = ls_server.env_file
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600
    token = dict(line.split("=", 1) for line in env_file.read_text().splitlines()
                 if "=" in line)["LABEL_STUDIO_API_KEY"]
    p = cumed("labelstudio", "status", "--json", "--data-dir", str(ls_server.data_dir))
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    assert st["status"] == "running" and st["url"].startswith("http://127.0.0.1:")
    assert st["env_file"] == str(env_file)
    p = cumed("labelstudio", "start", "--json", "--data-dir", str(ls_server.data_dir))  # already running
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["started"] is False
    for text in (p.stdout, p.stderr, ls_server.log_file.read_text(errors="replace")):
        assert token not in text


# ---- push / annotate / pull ---------------------------------------------------------------------

def test_push_annotate_pull_and_repeat_are_noops(backend_factory, dataset):
    b = backend_factory()
    tasks = tasks_for(6)
    before = copy.deepcopy(tasks)
    r = b.push("b1", dataset, tasks, LABEL_CONFIG)
    assert (r["pushed"], r["skipped"]) == (6, 0)
    assert tasks == before  # the caller's batch is not mutated
    assert r["project_title"] == f"cumed review: {dataset}"

    pulled = b.pull("b1", dataset)
    assert sorted(t["data"]["doc_id"] for t in pulled) == [f"d{i}" for i in range(6)]
    assert all(t["data"]["batch"] == "b1" and t["annotations"] == [] for t in pulled)
    by_doc = {t["data"]["doc_id"]: t for t in pulled}
    b.client.annotations.create(id=by_doc["d0"]["id"], result=result_items("keep"))
    b.client.annotations.create(id=by_doc["d1"]["id"], result=result_items("discard", "privacy", "含手机号 📞"))

    pulled = b.pull("b1", dataset)
    anns = {t["data"]["doc_id"]: t["annotations"] for t in pulled}
    assert len(anns["d0"]) == 1 and len(anns["d1"]) == 1 and sum(map(len, anns.values())) == 2
    decisions, problems = parse_tasks(pulled)
    got = {d.doc_id: (d.decision, d.reason, d.comment) for d in decisions}
    assert got["d0"][0] == "keep"
    assert got["d1"] == ("discard", "privacy", "含手机号 📞")
    assert {"id", "data", "annotations", "predictions"} <= set(pulled[0])
    assert {"id", "completed_by", "result", "was_cancelled"} <= set(anns["d1"][0])

    # re-push: nothing new; re-pull: same tasks, same annotations
    r2 = b.push("b1", dataset, tasks, LABEL_CONFIG)
    assert (r2["pushed"], r2["skipped"], r2["project"]) == (0, 6, r["project"])
    assert len(project_doc_ids(b, dataset)) == 6
    again = b.pull("b1", dataset)
    key = lambda ts: sorted((t["id"], tuple(a["id"] for a in t["annotations"])) for t in ts)  # noqa: E731
    assert key(again) == key(pulled)
    # a bigger batch later only adds the new docs
    r3 = b.push("b2", dataset, tasks_for(8), LABEL_CONFIG)
    assert (r3["pushed"], r3["skipped"]) == (2, 6)
    assert sorted(t["data"]["doc_id"] for t in b.pull("b2", dataset)) == ["d6", "d7"]
    assert not b.checkpoint_path("b1").exists()


def test_pull_pages_and_resumes_from_checkpoint(backend_factory, dataset, monkeypatch):
    b = backend_factory(page_size=100, chunk_size=120)
    assert b.push("big", dataset, tasks_for(260), LABEL_CONFIG)["pushed"] == 260
    b.push("other", dataset, tasks_for(30, prefix="o"), LABEL_CONFIG)  # must not leak into "big"

    real_list = b.client.tasks.list
    pages, failed = [], []

    def flaky(**kw):
        pages.append(kw["page"])
        if kw["page"] == 2 and not failed:
            failed.append(1)
            import httpx
            raise httpx.ReadError("connection reset")
        return real_list(**kw)

    monkeypatch.setattr(b.client.tasks, "list", flaky)
    with pytest.raises(CumedError, match="dropped the connection"):
        b.pull("big", dataset)
    ck = json.loads(b.checkpoint_path("big").read_text(encoding="utf-8"))
    assert ck["next_page"] == 2 and len(ck["tasks"]) == 100
    pages.clear()
    pulled = b.pull("big", dataset)
    assert pages[0] == 2  # resumed, page 1 not fetched again
    ids = [t["data"]["doc_id"] for t in pulled]
    assert len(ids) == 260 and set(ids) == {f"d{i}" for i in range(260)}
    assert not b.checkpoint_path("big").exists()


def test_emoji_and_lone_surrogate_survive(backend_factory, dataset, tmp_path):
    b = backend_factory()
    text = "发热😀三天 \ud83d\ude37 孤立代理\ud800结束 𠀀"
    r = b.push("u", dataset, [{"data": {"doc_id": "s1", "text": text, "meta": "m"}}], LABEL_CONFIG)
    assert r["pushed"] == 1
    [t] = b.pull("u", dataset)
    assert t["data"]["text"] == "发热😀三天 😷 孤立代理\ufffd结束 𠀀"
    out = write_tasks(tmp_path / "pulled.json", [t])
    raw = out.read_bytes().decode("utf-8")  # strict UTF-8
    assert "😀" in raw and "\\u" not in raw


# ---- faults -------------------------------------------------------------------------------------

def test_server_not_running_is_one_clear_error(tmp_path):
    b = LabelStudioBackend(url=f"http://127.0.0.1:{free_port()}", token="x" * 40, cache_dir=tmp_path)
    with pytest.raises(CumedError) as e:
        b.push("b", "ds", tasks_for(1), LABEL_CONFIG)
    msg = str(e.value)
    assert "is not reachable" in msg and "cumed labelstudio start" in msg and "\n" not in msg


def test_wrong_token_is_one_clear_error(ls_env, tmp_path):
    url, _ = ls_env
    b = LabelStudioBackend(url=url, token="0" * 40, cache_dir=tmp_path)
    with pytest.raises(CumedError, match=r"rejected the API token \(HTTP 40[13]"):
        b.pull("b", "ds")
    (tmp_path / "no-token.env").write_text("LABEL_STUDIO_URL=http://127.0.0.1:1\n")
    with pytest.raises(CumedError, match="no token in"):
        LabelStudioBackend(token_file=tmp_path / "no-token.env")


def test_server_killed_mid_push_then_repush_has_no_duplicates(ls_server, backend_factory, dataset, monkeypatch):
    b = backend_factory(chunk_size=100)
    tasks = tasks_for(600)
    before = copy.deepcopy(tasks)
    real_import = b.client.projects.import_tasks
    calls = []

    def import_then_die(**kw):
        calls.append(len(kw["request"]))
        if len(calls) == 3:  # SIGKILL the server while this chunk's request is in flight
            threading.Thread(target=ls_server.kill).start()
        return real_import(**kw)

    monkeypatch.setattr(b.client.projects, "import_tasks", import_then_die)
    with pytest.raises(CumedError) as e:
        b.push("k", dataset, tasks, LABEL_CONFIG)
    msg = str(e.value)
    assert ("not reachable" in msg or "dropped the connection" in msg) and "re-run" in msg, msg
    assert tasks == before
    assert ls_server.status()["status"] == "stopped"
    b.close()

    port = int(ls_server.status()["url"].rsplit(":", 1)[1])
    assert ls_server.start(port=port)["status"] == "running"
    monkeypatch.undo()
    b2 = backend_factory(chunk_size=100)
    r = b2.push("k", dataset, tasks, LABEL_CONFIG)
    assert r["pushed"] + r["skipped"] == 600 and r["pushed"] >= 300
    ids = project_doc_ids(b2, dataset)
    assert len(ids) == 600 and len(set(ids)) == 600


def test_cli_stop_status_start(ls_server):
    d = str(ls_server.data_dir)
    url = ls_server.status()["url"]
    p = cumed("labelstudio", "stop", "--json", "--data-dir", d)
    assert p.returncode == 0 and json.loads(p.stdout)["stopped"] is True, p.stderr
    p = cumed("labelstudio", "status", "--json", "--data-dir", d)
    assert json.loads(p.stdout)["status"] == "stopped"
    assert not ls_server.healthy(url)
    p = cumed("labelstudio", "start", "--json", "--data-dir", d)
    st = json.loads(p.stdout)
    assert p.returncode == 0 and st["status"] == "running" and st["url"] == url  # same port again
    assert ls_server.healthy(url)


# ---- no server needed ---------------------------------------------------------------------------

def test_project_titles_fit_label_studio_and_never_collide(tmp_path):
    b = LabelStudioBackend(url="http://127.0.0.1:1", token="t" * 40, cache_dir=tmp_path)
    assert b.project_title("cumed-pretrain") == "cumed review: cumed-pretrain"
    long_a, long_b = "x" * 40 + "-a", "x" * 40 + "-b"
    ta, tb = b.project_title(long_a), b.project_title(long_b)
    assert len(ta) <= 50 and len(tb) <= 50 and ta != tb
    assert "token" not in repr(b) and "t" * 40 not in repr(b)


def test_pull_from_an_export_file(tmp_path):
    export = tmp_path / "export.json"
    export.write_text(json.dumps([{"id": 1, "data": {"doc_id": "a", "batch": "b1", "text": "😀"},
                                   "annotations": [{"id": 9, "result": result_items("keep")}]}],
                                 ensure_ascii=False), encoding="utf-8")
    b = LabelStudioBackend(url="http://127.0.0.1:1", token="t" * 40, cache_dir=tmp_path)
    [t] = b.pull("b1", "ds", source=str(export))
    assert t["data"]["text"] == "😀" and t["annotations"][0]["id"] == 9
