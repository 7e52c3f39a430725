"""Pre-annotated review: tasks carry a model's suggestion (a labels version or a classifier) as Label
Studio predictions with the model version; ``review apply`` reports model-reviewer agreement per
batch, checked against a hand count. On the file backend and on a real Label Studio server."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pytest

from annotation.review.apply import apply
from annotation.review.config import result_items
from annotation.review.file_backend import FileBackend
from annotation.review.predictions import agreement
from annotation.review.queue import pull, push
from cumed.schemas import schema_for
from cumed.store import Store
from tests.annotation.test_review import annotate
from tests.cumed.test_store import docs_table

CLI = [sys.executable, "-c", "from cumed.cli import main; main()"]


def labels_for(store, ref, discard_every=4):
    """A labels version of every document of ``ref``: every 4th discard (score 1), the rest keep (score 4)."""
    dv = store.get(ref)
    rows = []
    for k, (i, s) in enumerate(zip(dv.to_arrow().column("id").to_pylist(), dv.to_arrow().column("source").to_pylist())):
        bad = k % discard_every == 0
        rows.append({"id": i, "source": s, "score": 1.0 if bad else 4.0, "label": "discard" if bad else "keep",
                     "reason": "模板化内容" if bad else "诊疗建议清楚", "model": "scripted", "rubric": "quality-v1"})
    lineage = {"parents": [dv.ref], "scoring": {"rubric_version": "quality-v1", "threshold": 3.0}}
    return store.publish("corpus-quality-labels", pa.Table.from_pylist(rows, schema=schema_for("labels")),
                         kind="labels", lineage=lineage).ref


def review(tasks, flip):
    """Reviewer verdicts: the model's suggestion, except for the documents in ``flip``."""
    out = {}
    for t in tasks:
        sug = t["data"]["suggestion"]["decision"]
        d = t["data"]["doc_id"]
        dec = ({"keep": "discard", "discard": "keep"}[sug]) if d in flip else sug
        out[d] = result_items(dec, "low_quality" if dec == "discard" else None)
    return out


def hand_count(tasks, verdicts):
    conf = {m: {r: 0 for r in ("keep", "discard")} for m in ("keep", "discard")}
    for t in tasks:
        d = t["data"]["doc_id"]
        if d in verdicts:
            conf[t["data"]["suggestion"]["decision"]][verdicts[d][0]["value"]["choices"][0]] += 1
    return conf


def test_file_backend_tasks_carry_the_labels_suggestion_and_apply_reports_agreement(tmp_path):
    st = Store(tmp_path / "store")
    ref = st.publish("corpus", docs_table(40)).ref
    labels = labels_for(st, ref)
    p = subprocess.run([*CLI, "review", "push", ref, "--n", "12", "--seed", "2", "--predictions", labels,
                        "--store", str(st.root), "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["predictions"]["model_version"] == labels == "corpus-quality-labels@1"
    assert res["predictions"]["tasks_with_prediction"] == 12 and res["predictions"]["tasks_without_prediction"] == 0
    tasks = json.loads(open(res["tasks_file"], encoding="utf-8").read())
    rows = {r["id"]: r for r in st.get(labels).to_arrow().to_pylist()}
    for t in tasks:
        (pred,) = t["predictions"]
        row = rows[t["data"]["doc_id"]]
        assert pred["model_version"] == labels and pred["score"] == pytest.approx(row["score"] / 5)
        assert pred["result"] == result_items(row["label"])
        assert t["data"]["suggestion"]["decision"] == row["label"] and row["reason"] in t["data"]["meta"]

    docs = [t["data"]["doc_id"] for t in tasks]
    flip = set(docs[:3])
    verdicts = review(tasks[:10], flip)  # 10 of 12 reviewed; 3 reviewers disagree with the model
    export = tmp_path / "export.json"
    export.write_text(json.dumps(annotate(tasks, verdicts), ensure_ascii=False), encoding="utf-8")
    pull(st, res["batch"], FileBackend(tmp_path), str(export))
    p = subprocess.run([*CLI, "review", "apply", ref, "--batch", res["batch"], "--store", str(st.root), "--json"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    m = json.loads(p.stdout)["batches"][res["batch"]]["model_agreement"]
    assert m["model_version"] == labels and m["compared"] == 10 and m["agree"] == 7 and m["rate"] == pytest.approx(0.7)
    assert m["confusion"] == hand_count(tasks, verdicts) and m["without_prediction"] == 0
    p = subprocess.run([*CLI, "review", "apply", ref, "--batch", res["batch"], "--store", str(st.root)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and f"model {labels} vs reviewers: 7/10 agree (70.0%)" in p.stdout, p.stdout


def test_classifier_predictions_on_the_file_backend(tmp_path):
    from annotation.quality.artifact import save_artifact
    from annotation.quality.train import train_classifier

    st = Store(tmp_path / "store")
    table = docs_table(30)
    texts = table.column("text").to_pylist()
    texts = [t if i % 2 else "限时促销，点击购买，扫码领券。" * 2 + str(i) for i, t in enumerate(texts)]
    table = table.set_column(1, "text", pa.array(texts))
    ref = st.publish("corpus", table).ref
    model = train_classifier([(t, i % 2) for i, t in enumerate(texts)], tokenizer="char", seed=0)
    save_artifact(model, st, threshold=0.5)
    res = push(st, ref, 8, lambda d: FileBackend(d), predictions="quality@1")
    assert res["predictions"]["model_version"] == "quality@1" and res["predictions"]["kind"] == "quality-classifier"
    tasks = json.loads(open(res["tasks_file"], encoding="utf-8").read())
    for t in tasks:
        (pred,) = t["predictions"]
        s = float(model.score([t["data"]["text"]])[0])
        assert pred["model_version"] == "quality@1" and pred["score"] == pytest.approx(s, abs=1e-5)
        assert pred["result"][0]["value"]["choices"] == ["keep" if s >= 0.5 else "discard"]
        assert ("促销" in t["data"]["text"]) == (pred["result"][0]["value"]["choices"] == ["discard"])


def test_agreement_counts_majority_verdicts_and_leaves_ties_out():
    from annotation.review.decisions import Decision

    def d(doc, who, dec, ann):
        return Decision(doc, None, ann, who, dec, "low_quality" if dec == "discard" else "", "")

    ds = [d("a", "x", "keep", 1), d("b", "x", "discard", 2), d("c", "x", "keep", 3), d("c", "y", "discard", 4),
          d("e", "x", "keep", 5), d("f", "x", "discard", 6)]
    m = agreement("quality@1", {"a": "keep", "b": "keep", "c": "keep", "f": "discard"}, ds)
    assert m["compared"] == 3 and m["agree"] == 2 and m["ties_left_out"] == 1 and m["without_prediction"] == 1
    assert m["confusion"] == {"keep": {"keep": 1, "discard": 1}, "discard": {"keep": 0, "discard": 1}}
    # po = 2/3; model keep 2/3, reviewers keep 1/3 -> pe = 2/9 + 2/9 = 4/9
    assert m["kappa"] == pytest.approx((2 / 3 - 4 / 9) / (1 - 4 / 9))


def test_predictions_refuse_a_dataset_that_is_not_labels(tmp_path):
    from cumed.errors import CumedError

    st = Store(tmp_path / "store")
    ref = st.publish("corpus", docs_table(10)).ref
    with pytest.raises(CumedError, match="corpus@1 is a documents dataset; give a labels version"):
        push(st, ref, 3, lambda d: FileBackend(d), predictions="corpus@1")


def test_predictions_on_a_real_label_studio_server(ls_server, dataset, tmp_path):
    from annotation.labelstudio.backend import LabelStudioBackend

    st = Store(tmp_path / "store")
    ref = st.publish(dataset, docs_table(30)).ref
    labels = labels_for(st, ref, discard_every=3)
    backend = LabelStudioBackend(token_file=ls_server.env_file, cache_dir=tmp_path / "cache")
    res = push(st, ref, 9, lambda d: backend, seed=1, predictions=labels)
    assert res["pushed"] == 9 and res["predictions"]["tasks_with_prediction"] == 9
    rows = {r["id"]: r for r in st.get(labels).to_arrow().to_pylist()}

    # read back through the SDK: every task holds one prediction with the model version and choice
    project = backend.find_project(dataset)
    tasks = {t.data["doc_id"]: t for t in backend.client.tasks.list(project=project, fields="all")}
    assert len(tasks) == 9
    # the project pre-labels with this model version (Label Studio filters predictions by it)
    assert backend.client.projects.get(id=project).model_version == labels
    for doc, t in tasks.items():
        preds = list(backend.client.predictions.list(task=t.id))
        assert len(preds) == 1, doc
        p = preds[0]
        assert p.model_version == labels and p.score == pytest.approx(rows[doc]["score"] / 5)
        assert p.result[0]["from_name"] == "decision" and p.result[0]["value"]["choices"] == [rows[doc]["label"]]

    # reviewers: 6 of 9 submit, 2 of them disagree with the model (as the existing tests submit)
    pulled = backend.pull(res["batch"], dataset)
    docs = sorted(tasks)
    flip = {docs[0], docs[4]}
    verdicts = review(pulled, flip)
    for doc in docs[:6]:
        backend.client.annotations.create(id=tasks[doc].id, result=verdicts[doc])
    got = pull(st, res["batch"], backend)
    assert got["decisions"] == 6
    _, rep = apply(st, ref, [res["batch"]])
    m = rep["batches"][res["batch"]]["model_agreement"]
    submitted = {d: verdicts[d] for d in docs[:6]}
    assert m["model_version"] == labels and m["compared"] == 6 and m["agree"] == 4
    assert m["rate"] == pytest.approx(4 / 6) and m["confusion"] == hand_count(pulled, submitted)
    # the pulled export carries the predictions too (Label Studio's JSON export format)
    assert all(t["predictions"] and t["predictions"][0]["model_version"] == labels for t in pulled)

    # the next batch, scored by another labels version: the project now pre-labels with that one
    newer = labels_for(st, ref, discard_every=2)
    assert newer.endswith("@2")
    second = push(st, ref, 5, lambda d: backend, seed=1, predictions=newer)
    assert second["pushed"] == 5 and backend.client.projects.get(id=project).model_version == newer
