"""Batch state under concurrency and crashes (file backend, no server): locked batch-id allocation
and ledger, crash-safe write order, resumable ranking pushes, fsynced appends, torn result lines."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading

import pytest

from annotation.batches import BatchState
from annotation.ranking import queue as rank_queue
from annotation.review import queue as review_queue
from annotation.review.apply import apply
from annotation.review.config import result_items
from annotation.review.decisions import Decision
from annotation.review.file_backend import FileBackend
from annotation.review.queue import ReviewState
from annotation.ranking.queue import RankState
from cumed.errors import CumedError
from cumed.store import Store
from tests.annotation.test_ranking import candidates_table, export as rank_export, model_order
from tests.annotation.test_review import annotate
from tests.cumed.test_store import docs_table


@pytest.fixture()
def store(tmp_path):
    st = Store(tmp_path / "store")
    st.publish("corpus", docs_table(40))
    st.publish("cands", candidates_table(6), kind="rankings")
    return st


def cli(*args):
    return subprocess.run([sys.executable, "-c", "from cumed.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120)


# ---- two pushes at once (real processes) -----------------------------------------------------------

def _push_worker(kind: str, store_root: str, n: int, start, meet, out: str) -> None:
    """One `push` in its own process. ``meet``: both processes wait there (3 s at most) right before
    saving their batch, after choosing its id and items - unless a lock keeps the other one out."""
    real, waited = BatchState.save_batch, []

    def meet_then_save(self, info):
        if not waited:
            waited.append(1)
            try:
                meet.wait(timeout=3)
            except threading.BrokenBarrierError:
                pass
        real(self, info)

    BatchState.save_batch = meet_then_save
    store = Store(store_root)
    start.wait(timeout=120)  # both processes have imported everything: the pushes really overlap
    if kind == "review":
        res = review_queue.push(store, "corpus@1", n, FileBackend, seed=0)
    else:
        res = rank_queue.push(store, "cands@1", n, FileBackend, k=4, seed=0)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(res, f)


def _two_pushes(kind: str, store: Store, n: int, tmp_path) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    start, meet = ctx.Barrier(2), ctx.Barrier(2)
    outs = [tmp_path / f"{kind}-{i}.json" for i in range(2)]
    procs = [ctx.Process(target=_push_worker, args=(kind, str(store.root), n, start, meet, str(o))) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    assert [p.exitcode for p in procs] == [0, 0]
    return [json.loads(o.read_text(encoding="utf-8")) for o in outs]


@pytest.mark.parametrize("kind", ["review", "rank"])
def test_two_concurrent_pushes_get_distinct_batches_and_items(store, tmp_path, kind):
    n = 15 if kind == "review" else 3
    results = _two_pushes(kind, store, n, tmp_path)
    state = ReviewState(store, "corpus") if kind == "review" else RankState(store, "cands")
    batches = sorted(r["batch"] for r in results)
    assert len(set(batches)) == 2 and state.batches() == batches
    items = [state.item_ids(state.batch(b)) for b in batches]
    assert [len(i) for i in items] == [n, n] and not set(items[0]) & set(items[1])
    # the ledger file itself (not only its repair from batch.json) names every queued item
    stored = json.loads((state.root / "ledger.json").read_text(encoding="utf-8"))
    assert stored == {i: b for b, ids in zip(batches, items) for i in ids}


# ---- crashes -------------------------------------------------------------------------------------

class Crash(BaseException):
    """Stands for the process dying (not an error the code may catch)."""


def test_crash_between_batch_and_ledger_never_queues_a_document_twice(store, monkeypatch):
    real, calls = BatchState.save_batch, []

    def save_then_die(self, info):
        real(self, info)
        calls.append(1)
        if len(calls) == 1:
            raise Crash()

    monkeypatch.setattr(BatchState, "save_batch", save_then_die)
    with pytest.raises(Crash):
        review_queue.push(store, "corpus@1", 10, FileBackend, seed=0)
    monkeypatch.undo()
    resumed = review_queue.push(store, "corpus@1", 10, FileBackend, seed=0)
    assert resumed["batch"] == "corpus.r001" and resumed["resumed"]
    rest = review_queue.push(store, "corpus@1", 100, FileBackend, seed=0)
    state = ReviewState(store, "corpus")
    first, second = (set(state.batch(b)["doc_ids"]) for b in ("corpus.r001", rest["batch"]))
    assert len(first) == 10 and len(second) == 30 and not first & second


def test_a_batch_being_pushed_is_not_resumed_by_another_push(store):
    """While one push is still sending its batch, a second push of the dataset (here started from
    inside the first one's backend call) makes a batch of its own instead of resuming that one."""
    inner = {}

    class Slow(FileBackend):
        def push(self, *a, **k):
            if not inner:
                inner["res"] = review_queue.push(store, "corpus@1", 5, FileBackend, seed=1)
            return super().push(*a, **k)

    outer = review_queue.push(store, "corpus@1", 5, Slow, seed=0)
    assert (outer["batch"], outer["resumed"]) == ("corpus.r001", False)
    assert (inner["res"]["batch"], inner["res"]["resumed"]) == ("corpus.r002", False)
    state = ReviewState(store, "corpus")
    assert not set(state.batch("corpus.r001")["doc_ids"]) & set(state.batch("corpus.r002")["doc_ids"])
    assert all(state.batch(b)["state"] == "pushed" for b in state.batches())


def test_interrupted_rank_push_is_resumed_not_resampled(store):
    class Boom(FileBackend):
        def push(self, *a, **k):
            raise CumedError("server went away")

    with pytest.raises(CumedError, match="went away"):
        rank_queue.push(store, "cands@1", 3, Boom, k=4, seed=7)
    state = RankState(store, "cands")
    info = state.batch("cands.k001")
    assert info["state"] == "created" and len(info["prompts"]) == 3
    # other arguments on the re-run: the unfinished batch is finished first, unchanged
    res = rank_queue.push(store, "cands@1", 2, FileBackend, k=3, seed=99)
    assert (res["batch"], res["resumed"], res["tasks"], res["k"]) == ("cands.k001", True, 3, 4)
    assert state.batches() == ["cands.k001"] and state.batch("cands.k001")["state"] == "pushed"
    tasks = json.loads(open(res["tasks_file"], encoding="utf-8").read())
    assert sorted(t["data"]["prompt_id"] for t in tasks) == sorted(info["prompts"])
    for t in tasks:  # the very tasks the first push built: same response ids, same display order
        assert [r["id"] for r in t["data"]["responses"]] == info["prompts"][t["data"]["prompt_id"]]["order"]
        assert t["data"]["batch"] == "cands.k001"
    nxt = rank_queue.push(store, "cands@1", 10, FileBackend, k=4, seed=7)
    assert nxt["batch"] == "cands.k002" and not nxt["resumed"] and nxt["tasks"] == 3


def test_state_files_and_appends_are_fsynced(store, tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def record(fd):
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    res = review_queue.push(store, "corpus@1", 5, FileBackend, seed=0)
    assert any("ledger.json" in s for s in synced) and any("batch.json" in s for s in synced)
    tasks = json.loads(open(res["tasks_file"], encoding="utf-8").read())
    path = tmp_path / "export.json"
    path.write_text(json.dumps(annotate(tasks, {tasks[0]["data"]["doc_id"]: result_items("keep")})), encoding="utf-8")
    synced.clear()
    review_queue.pull(store, res["batch"], FileBackend(tmp_path), str(path))
    assert "annotations.jsonl" in synced


# ---- torn and damaged result lines -----------------------------------------------------------------

def _reviewed(store, tmp_path, n_annotated):
    """A pushed batch of 10 and an export with ``n_annotated`` decisions, pulled once."""
    res = review_queue.push(store, "corpus@1", 10, FileBackend, seed=3)
    tasks = json.loads(open(res["tasks_file"], encoding="utf-8").read())
    docs = [t["data"]["doc_id"] for t in tasks]
    verdicts = {d: result_items("discard", "low_quality") if i % 2 else result_items("keep")
                for i, d in enumerate(docs[:n_annotated])}
    path = tmp_path / "export.json"
    path.write_text(json.dumps(annotate(tasks, verdicts), ensure_ascii=False), encoding="utf-8")
    return res["batch"], tasks, path


def test_torn_last_line_is_reported_then_repaired_by_the_next_pull(store, tmp_path):
    batch, tasks, export = _reviewed(store, tmp_path, 3)
    assert review_queue.pull(store, batch, FileBackend(tmp_path), str(export))["decisions"] == 3
    results = store.root / "_review" / "corpus" / batch / "annotations.jsonl"
    # a later pull died mid-append: half of its record reached the disk, no newline
    doc = tasks[3]["data"]["doc_id"]
    record = json.dumps(Decision(doc, 1003, 4, "a@x", "keep", "", "").to_dict(), ensure_ascii=False)
    with open(results, "a", encoding="utf-8") as f:
        f.write(record[: len(record) // 2])

    with pytest.raises(CumedError) as e:
        apply(store, "corpus@1", [batch])
    msg = str(e.value)
    assert f"{results} line 4" in msg and "torn" in msg and f"review pull {batch}" in msg and "\n" not in msg
    p = cli("review", "apply", "corpus@1", "--batch", batch, "--store", str(store.root))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith("error: ") and "annotations.jsonl line 4" in p.stderr and p.stderr.count("\n") == 1

    # the annotators' export now holds the fourth decision: the next pull sets the fragment aside
    # and adds the decision again; none of the three complete ones is lost or doubled
    verdicts = {t["data"]["doc_id"]: result_items("keep") for t in tasks[:4]}
    export.write_text(json.dumps(annotate(tasks, verdicts), ensure_ascii=False), encoding="utf-8")
    got = review_queue.pull(store, batch, FileBackend(tmp_path), str(export))
    assert got["new_decisions"] == 1 and got["decisions"] == 4
    assert len(got["repaired"]) == 1 and f"{results} line 4" in got["repaired"][0]
    assert (results.parent / "annotations.jsonl.torn").read_text(encoding="utf-8") == record[: len(record) // 2] + "\n"
    assert sorted(d.annotation_id for d in ReviewState(store, "corpus").decisions(batch)) == [1, 2, 3, 4]
    dv, review = apply(store, "corpus@1", [batch])
    assert review["reviewed_docs"] == 4


def test_complete_last_record_without_newline_is_kept_and_ended(store, tmp_path):
    batch, tasks, export = _reviewed(store, tmp_path, 2)
    results = store.root / "_review" / "corpus" / batch / "annotations.jsonl"
    review_queue.pull(store, batch, FileBackend(tmp_path), str(export))
    results.write_bytes(results.read_bytes().rstrip(b"\n"))  # the crash came right before the newline
    verdicts = {t["data"]["doc_id"]: result_items("keep") for t in tasks[:3]}
    export.write_text(json.dumps(annotate(tasks, verdicts), ensure_ascii=False), encoding="utf-8")
    got = review_queue.pull(store, batch, FileBackend(tmp_path), str(export))
    assert got["new_decisions"] == 1 and got["decisions"] == 3 and "repaired" not in got
    assert results.read_text(encoding="utf-8").count("\n") == 3


def test_damaged_line_in_the_middle_is_an_error_naming_file_and_line(store, tmp_path):
    batch, _, export = _reviewed(store, tmp_path, 3)
    review_queue.pull(store, batch, FileBackend(tmp_path), str(export))
    results = store.root / "_review" / "corpus" / batch / "annotations.jsonl"
    lines = results.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = '{"doc_id": "x", "annot\n'
    results.write_text("".join(lines), encoding="utf-8")
    for run in (lambda: review_queue.pull(store, batch, FileBackend(tmp_path), str(export)),
                lambda: apply(store, "corpus@1", [batch])):
        with pytest.raises(CumedError) as e:
            run()
        msg = str(e.value)
        assert f"{results} line 2: not a valid review record" in msg and "delete that line" in msg
        assert "\n" not in msg
    lines[1] = '{"doc_id": "x"}\n'  # valid JSON, not a decision
    results.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(CumedError, match=r"line 2: not a valid review record .*missing"):
        apply(store, "corpus@1", [batch])


def test_torn_rankings_line_is_repaired_by_the_next_rank_pull(store, tmp_path):
    res = rank_queue.push(store, "cands@1", 3, FileBackend, k=4, seed=1)
    tasks = json.load(open(res["tasks_file"], encoding="utf-8"))
    truth = model_order(res["tasks_file"], store.root / "_ranking" / "cands" / res["batch"] / "batch.json")
    path = tmp_path / "export.json"
    path.write_text(json.dumps(rank_export(tasks, {"a@x": truth})), encoding="utf-8")
    assert rank_queue.pull(store, res["batch"], FileBackend(tmp_path), str(path), publish=None)["rankings"] == 3
    results = store.root / "_ranking" / "cands" / res["batch"] / "rankings.jsonl"
    with open(results, "a", encoding="utf-8") as f:
        f.write('{"prompt_id": "p0", "task_id": 100, "annotation_id": 9, "ranking": [["r')
    with pytest.raises(CumedError, match=r"rankings.jsonl line 4: torn last record.*rank pull"):
        RankState(store, "cands").rankings(res["batch"])
    got = rank_queue.pull(store, res["batch"], FileBackend(tmp_path), str(path), publish=None)
    assert got["new_rankings"] == 0 and got["rankings"] == 3 and "line 4" in got["repaired"][0]
