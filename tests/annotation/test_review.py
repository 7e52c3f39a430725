"""Review queues on the file backend: sampling, push/pull idempotency, validation, apply."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from annotation.review.apply import apply
from annotation.review.config import LABEL_CONFIG, result_items
from annotation.review.decisions import Decision, cohen_kappa_pairs, krippendorff_alpha_nominal, majority, parse_tasks
from annotation.review.file_backend import FileBackend
from annotation.review.queue import ReviewState, _candidates, pull, push
from annotation.review.sampling import sample
from cumed.errors import CumedError
from cumed.store import Store
from tests.cumed.test_store import docs_table


def frame(n_big=200, n_small=3):
    rows = [{"id": f"big-{i}", "source": "big", "category": "qa", "score": i / n_big} for i in range(n_big)]
    rows += [{"id": f"small-{i}", "source": "small", "category": "textbook", "score": 0.5} for i in range(n_small)]
    return pd.DataFrame(rows)


def test_stratified_sees_small_sources_and_is_reproducible():
    ids = sample(frame(), 10, "stratified", seed=1)
    assert len(ids) == 10 and any(i.startswith("small-") for i in ids)
    assert ids == sample(frame(), 10, "stratified", seed=1)
    assert ids != sample(frame(), 10, "stratified", seed=2)


def test_uncertainty_picks_scores_nearest_the_threshold():
    ids = sample(frame(n_small=0), 5, "uncertainty", threshold=0.3)
    scores = sorted(abs(int(i.split("-")[1]) / 200 - 0.3) for i in ids)
    assert max(scores) <= 0.015


def test_score_band_covers_every_band():
    ids = sample(frame(n_small=0), 10, "score_band")
    assert sorted(int(int(i.split("-")[1]) / 20) for i in ids) == list(range(10))


def test_score_strategies_need_scores():
    with pytest.raises(CumedError, match="needs classifier scores"):
        sample(frame().assign(score=None), 5, "uncertainty")


def annotate(tasks, verdicts, start_id=1, annotator="a@x"):
    """Tasks in Label Studio export format with one annotation each (verdicts: doc_id -> result list)."""
    out = []
    for k, t in enumerate(tasks):
        doc = t["data"]["doc_id"]
        anns = []
        if doc in verdicts:
            anns = [{"id": start_id + k, "completed_by": {"email": annotator}, "result": verdicts[doc], "was_cancelled": False}]
        out.append({"id": 1000 + k, "data": t["data"], "annotations": anns})
    return out


@pytest.fixture()
def store(tmp_path):
    st = Store(tmp_path / "store")
    st.publish("corpus", docs_table(40))
    return st


def file_backend(batch_dir):
    return FileBackend(batch_dir)


def test_push_pull_apply_round_trip(store, tmp_path):
    res = push(store, "corpus@1", 10, file_backend, seed=3)
    assert res["batch"] == "corpus.r001" and res["backend"] == "file" and res["tasks"] == 10
    tasks = json.loads(open(res["tasks_file"], encoding="utf-8").read())
    assert open(res["config_file"], encoding="utf-8").read() == LABEL_CONFIG
    assert {t["data"]["batch"] for t in tasks} == {"corpus.r001"} and "患者" in tasks[0]["data"]["text"]
    docs = [t["data"]["doc_id"] for t in tasks]
    verdicts = {docs[0]: result_items("discard", "low_quality", "重复的模板"), docs[1]: result_items("discard", "privacy"),
                docs[2]: result_items("keep")}
    export = tmp_path / "export.json"
    export.write_text(json.dumps(annotate(tasks, verdicts), ensure_ascii=False), encoding="utf-8")

    first = pull(store, "corpus.r001", FileBackend(tmp_path), str(export))
    assert first["new_decisions"] == 3 and first["problems"] == []
    again = pull(store, "corpus.r001", FileBackend(tmp_path), str(export))
    assert again["new_decisions"] == 0 and again["decisions"] == 3

    dv, review = apply(store, "corpus@1", ["corpus.r001"])
    assert dv.ref == "corpus@2" and dv.rows == 38 and review["discarded"] == 2
    removed = dv.to_pandas("removed").set_index("id")
    assert removed.loc[docs[0], "reason"] == "manual_review:low_quality"
    assert removed.loc[docs[1], "reason"] == "manual_review:privacy"
    assert set(removed.index) == {docs[0], docs[1]}
    ann = dv.manifest["lineage"]["annotations"][0]
    assert ann["batch"] == "corpus.r001" and ann["annotators"] == ["a@x"] and len(ann["annotation_ids"]) == 3
    assert dv.manifest["lineage"]["parents"] == ["corpus@1"]


def test_repush_never_queues_a_document_twice(store):
    a = push(store, "corpus@1", 15, file_backend, seed=0)
    b = push(store, "corpus@1", 15, file_backend, seed=0)
    c = push(store, "corpus@1", 15, file_backend, seed=0)
    state = ReviewState(store, "corpus")
    batches = [set(state.batch(x["batch"])["doc_ids"]) for x in (a, b, c)]
    assert [len(x) for x in batches] == [15, 15, 10]
    assert not (batches[0] & batches[1]) and not (batches[1] & batches[2]) and not (batches[0] & batches[2])


def test_interrupted_push_is_resumed_not_resampled(store, monkeypatch):
    class Boom(FileBackend):
        def push(self, *a, **k):
            raise CumedError("server went away")

    with pytest.raises(CumedError):
        push(store, "corpus@1", 5, lambda d: Boom(d), seed=0)
    state = ReviewState(store, "corpus")
    chosen = state.batch("corpus.r001")["doc_ids"]
    assert state.batch("corpus.r001")["state"] == "created" and len(chosen) == 5
    res = push(store, "corpus@1", 5, file_backend, seed=9)  # another seed would sample other documents
    assert res["batch"] == "corpus.r001" and res["resumed"] and res["tasks"] == 5
    assert state.batches() == ["corpus.r001"]
    tasks = json.loads(open(res["tasks_file"], encoding="utf-8").read())
    assert [t["data"]["doc_id"] for t in tasks] == chosen == state.batch("corpus.r001")["doc_ids"]
    # and resampling would have shown: seed 9 picks other documents
    _, frame = _candidates(store, "corpus@1")
    assert set(sample(frame, 5, "stratified", seed=9)) != set(chosen)


def test_invalid_annotations_are_reported_and_skipped():
    data = {"doc_id": "d1"}
    tasks = [
        {"id": 1, "data": data, "annotations": [{"id": 11, "result": []}]},
        {"id": 2, "data": data, "annotations": [{"id": 12, "result": result_items("maybe")}]},
        {"id": 3, "data": data, "annotations": [{"id": 13, "result": result_items("discard")}]},
        {"id": 4, "data": {}, "annotations": [{"id": 14, "result": result_items("keep")}]},
        {"id": 5, "data": data, "annotations": [{"id": 15, "result": "keep"}]},
        {"id": 6, "data": data, "annotations": [{"id": 16, "result": result_items("keep"), "was_cancelled": True}]},
        {"id": 7, "data": data, "annotations": [{"id": 17, "result": result_items("保留 keep")}]},
    ]
    decisions, problems = parse_tasks(tasks)
    assert [(d.task_id, d.decision) for d in decisions] == [(7, "keep")]
    assert [p.task_id for p in problems] == [1, 2, 3, 4, 5]
    assert "reason" in problems[2].problem and "doc_id" in problems[3].problem


def test_malformed_export_names_the_file(tmp_path):
    bad = tmp_path / "export.json"
    bad.write_text('[{"id": 1, "data": {"doc_id": "x"}, "annotations": [', encoding="utf-8")
    with pytest.raises(CumedError, match=r"export.json is not valid JSON.*line 1"):
        FileBackend(tmp_path).pull("b", "d", str(bad))
    bad.write_text('{"a": 1}', encoding="utf-8")
    with pytest.raises(CumedError, match="expected a list of tasks"):
        FileBackend(tmp_path).pull("b", "d", str(bad))


def d(doc, who, decision, ann, reason="low_quality"):
    return Decision(doc, None, ann, who, decision, reason if decision == "discard" else "", "")


def test_majority_ties_and_agreement():
    ds = [d("x", "a", "discard", 1), d("x", "b", "discard", 2), d("x", "c", "keep", 3),
          d("y", "a", "keep", 4), d("y", "b", "discard", 5),
          d("z", "a", "keep", 6), d("z", "b", "keep", 7)]
    v = majority(ds)
    assert v["x"].decision == "discard" and v["y"].decision is None and v["z"].decision == "keep"
    # a and b agree on x and z, disagree on y: po = 2/3; a keeps 2/3, b keeps 1/3 -> pe = 4/9
    assert cohen_kappa_pairs(ds)["a|b"] == pytest.approx((2 / 3 - 4 / 9) / (1 - 4 / 9))
    two = [d("p", "a", "keep", 1), d("p", "b", "keep", 2), d("q", "a", "discard", 3), d("q", "b", "discard", 4)]
    assert krippendorff_alpha_nominal(two) == pytest.approx(1.0)
    mixed = two + [d("r", "a", "keep", 5), d("r", "b", "discard", 6)]
    # coincidences: keep-keep 2, discard-discard 2, keep-discard 1, discard-keep 1; n=6, n_keep=3, n_discard=3
    assert krippendorff_alpha_nominal(mixed) == pytest.approx(1 - 5 * 2 / (3 * 3 * 2))


def test_cli_push_json_prints_batch_backend_and_paths(store):
    p = subprocess.run([sys.executable, "-c", "from cumed.cli import main; main()", "review", "push", "corpus@1",
                        "--n", "4", "--store", str(store.root), "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["batch"] == "corpus.r001" and res["backend"] == "file"
    assert res["tasks_file"].endswith("tasks.json") and res["config_file"].endswith("config.xml")
