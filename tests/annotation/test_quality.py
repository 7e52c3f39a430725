"""Quality classifier: real labels (doctor answers vs GPT-distilled answers), determinism,
the artifact's lineage, the datatrove filter step and the precision-targeted threshold."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import ParquetWriter

from annotation.quality.artifact import save_artifact
from curation.quality.artifact import load_artifact, resolve_artifact
from curation.quality.tokenize import tokenize
from curation.steps.quality import QualityFilter
from annotation.quality.train import (
    choose_threshold, evaluate, pr_curve_plot, precision_recall_curve, roc_auc, train_classifier,
)
from annotation.quality.weak_labels import load_weak_labels, source_lineage, split

TOKENIZER = "jieba"  # the benchmark's winner (BENCHMARKS.md)


@pytest.fixture(scope="module")
def data(raw_root):
    examples = load_weak_labels(raw_root)
    train, held = split(examples)
    return train, held


@pytest.fixture(scope="module")
def model(data):
    train, _ = data
    return train_classifier(train, tokenizer=TOKENIZER, seed=0)


@pytest.fixture(scope="module")
def metrics(model, data):
    train, held = data
    return evaluate(model, held, train_labels=[e.label for e in train])


def test_tokenizers_give_one_line():
    text = "高血压病人可以口服党参的。\n\n  Hello COVID-19\r\n治疗"
    for tok in ("jieba", "char"):
        line = tokenize(text, tok)
        assert "\n" not in line and "\r" not in line and "  " not in line
        assert "<nl>" in line and "hello" in line
    assert tokenize(text, "jieba").startswith("高血压 病人 可以 口服 党参")
    assert tokenize(text, "char").startswith("高 血 压 病 人")
    assert tokenize(text, "jieba") == tokenize(text, "jieba")


def test_split_is_deterministic_and_stratified(data, raw_root):
    train, held = data
    train2, held2 = split(load_weak_labels(raw_root))
    assert [e.text for e in held] == [e.text for e in held2]
    assert not {e.text for e in train} & {e.text for e in held}
    for src in {e.source for e in train}:
        n_tr = sum(e.source == src for e in train)
        n_te = sum(e.source == src for e in held)
        assert abs(n_te / (n_tr + n_te) - 0.2) < 0.01, src


def test_beats_majority_baseline_on_real_held_out_labels(metrics):
    # measured (BENCHMARKS.md): F1 0.996, accuracy 0.995, AUC 0.9997 vs majority 0.591
    m = metrics
    assert m["n"] > 4000
    assert m["majority_baseline_accuracy"] < 0.65
    assert m["accuracy"] >= m["majority_baseline_accuracy"] + 0.3, m
    assert m["f1"] >= 0.97, m
    assert m["f1"] >= m["majority_baseline_f1"] + 0.2, m
    assert m["precision"] >= 0.97 and m["recall"] >= 0.97, m
    assert m["roc_auc"] >= 0.99, m


def test_training_is_deterministic(data):
    """Also after the process has freed memory full of other numbers (as a build in the same
    process leaves it): fastText reads memory it does not initialise."""
    from cumed.process import reuse_freed_memory

    train, held = data
    sub = train[::5]
    texts = [e.text for e in held[:500]]
    reuse_freed_memory()
    runs = []
    for _ in range(4):
        junk = [np.random.default_rng(k).random(4_000_000).astype(np.float32) for k in range(8)]
        del junk  # 128 MB of random floats freed back to the heap
        runs.append(train_classifier(sub, tokenizer=TOKENIZER, seed=7))
    assert all(r.params["lr"] == runs[0].params["lr"] for r in runs)
    a = runs[0].score(texts)
    assert all(np.array_equal(a, r.score(texts)) for r in runs[1:])
    c = train_classifier(sub, tokenizer=TOKENIZER, seed=8).score(texts)
    assert not np.array_equal(a, c)  # the seed is used


def test_char_ngram_tokenizer_also_trains(data):
    train, held = data
    m = train_classifier(train[::4], tokenizer="char", seed=0)
    ev = evaluate(m, held[::4])
    assert ev["f1"] >= 0.95 and m.tokenizer == "char"


def test_metrics_match_hand_computed():
    scores = [0.9, 0.8, 0.7, 0.6, 0.4, 0.3]
    labels = [1, 1, 0, 1, 0, 0]
    assert roc_auc(scores, labels) == pytest.approx(8 / 9)
    assert roc_auc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)  # ties count half
    p, r, t = precision_recall_curve(scores, labels)
    assert list(t) == [0.9, 0.8, 0.7, 0.6, 0.4, 0.3]
    assert p[3] == pytest.approx(0.75) and r[3] == pytest.approx(1.0)
    assert choose_threshold(scores, labels, 1.0) == 0.8
    assert choose_threshold(scores, labels, 0.75) == 0.6
    with pytest.raises(ValueError, match="best"):
        choose_threshold([0.9, 0.1], [0, 1], 0.9)


def test_threshold_meets_target_precision_on_unseen_half(model, data):
    _, held = data
    y = np.array([e.label for e in held])
    s = model.score([e.text for e in held])
    half = np.arange(len(held)) % 2 == 0
    target = 0.99
    thr = choose_threshold(s[half], y[half], target)
    kept = s[~half] >= thr
    precision = y[~half][kept].mean()
    recall = kept[y[~half] == 1].mean()
    assert precision >= target, (thr, precision)
    assert recall >= 0.9, (thr, recall)


def test_pr_curve_png(model, data, tmp_path):
    _, held = data
    y = [e.label for e in held[:300]]
    png = pr_curve_plot({TOKENIZER: (model.score([e.text for e in held[:300]]), y)}, tmp_path / "pr.png", target_precision=0.99)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_artifact_round_trips_with_lineage(model, metrics, data, raw_root, tmp_path):
    train, held = data
    lineage = {"datasets": ["cumed-sft@3"], "label_batches": ["b-0001"], "weak_label_sources": source_lineage(raw_root),
               "train_rows": len(train), "held_out_rows": len(held)}
    p1 = save_artifact(model, tmp_path / "store", metrics=metrics, threshold=0.4, target_precision=0.99, lineage=lineage)
    p2 = save_artifact(model, tmp_path / "store", metrics=metrics, threshold=0.4, lineage=lineage)
    assert p1.name == "v1" and p2.name == "v2" and p1.parent.name == "quality" and p1.parent.parent.name == "_models"
    assert not list(p1.parent.glob(".tmp-*"))
    loaded, meta = load_artifact(p1)
    assert meta["version"] == 1 and meta["tokenizer"] == TOKENIZER and meta["threshold"] == 0.4
    assert meta["lineage"]["label_batches"] == ["b-0001"] and meta["lineage"]["datasets"] == ["cumed-sft@3"]
    assert {s["name"] for s in meta["lineage"]["weak_label_sources"]} == {"toyhom_answers", "cmtmedqa_answers", "huatuo_gpt_answers"}
    assert all(len(s["sha256"]) == 64 for s in meta["lineage"]["weak_label_sources"])
    assert meta["metrics"]["f1"] == pytest.approx(metrics["f1"])
    assert len(meta["files"]["model.bin"]["sha256"]) == 64
    texts = [e.text for e in held[:200]]
    assert np.array_equal(loaded.score(texts), model.score(texts))
    assert resolve_artifact("quality@latest", tmp_path / "store") == p2
    assert resolve_artifact("quality@1", tmp_path / "store") == p1
    # a damaged model file is refused
    (p2 / "data" / "model.bin").write_bytes(b"garbage")
    with pytest.raises(Exception, match="sha256"):
        load_artifact(p2)


def test_filter_in_datatrove_pipeline_with_two_workers(model, data, tmp_path):
    _, held = data
    art = save_artifact(model, tmp_path / "store", threshold=0.5)
    keep = [e for e in held if e.label == 1][:150]
    discard = [e for e in held if e.label == 0][:150]
    rows = [e for pair in zip(keep, discard) for e in pair]
    inp = tmp_path / "in"
    inp.mkdir()
    frame = pd.DataFrame({"id": [f"d{i}" for i in range(len(rows))], "text": [e.text for e in rows]})
    frame.iloc[:150].to_parquet(inp / "a.parquet")
    frame.iloc[150:].to_parquet(inp / "b.parquet")
    f = QualityFilter(str(art), batch_size=64, exclusion_writer=ParquetWriter(str(tmp_path / "removed")))
    assert f.threshold == 0.5 and f._model is None
    LocalPipelineExecutor(
        pipeline=[ParquetReader(str(inp)), f, ParquetWriter(str(tmp_path / "out"))],
        tasks=2, workers=2, logging_dir=str(tmp_path / "logs"),
    ).run()
    kept = pd.read_parquet(tmp_path / "out")
    removed = pd.read_parquet(tmp_path / "removed")
    assert len(kept) + len(removed) == len(rows)
    assert len(removed) > 50 and len(kept) > 100
    label = {f"d{i}": e.label for i, e in enumerate(rows)}
    assert np.mean([label[i] for i in kept["id"]]) > 0.95
    assert np.mean([label[i] for i in removed["id"]]) < 0.05
    for meta in kept["metadata"]:
        assert meta["quality_score"] >= 0.5
    for meta in removed["metadata"]:
        assert meta["removed_by"] == "quality" and meta["quality_score"] < 0.5
        a, b = meta["reason"].removeprefix("quality: ").split(" < ")
        assert meta["reason"].startswith("quality: ") and float(a) < float(b) == 0.5
    # in-process use gives the same scores as the model
    docs = [Document(text=e.text, id=str(i)) for i, e in enumerate(rows[:50])]
    qf = QualityFilter(str(art), threshold=0.9)
    res = qf.filter_batch(docs)
    assert qf._model is not None and pickle.loads(pickle.dumps(qf))._model is None  # workers reload it
    assert [d.metadata["quality_score"] for d in docs] == pytest.approx(list(model.score([d.text for d in docs])), abs=1e-6)
    assert all((r is True) == (d.metadata["quality_score"] >= 0.9) for r, d in zip(res, docs))


def test_review_labels_plus_weak_labels_train_with_lineage(data, tmp_path):
    from annotation.quality.review_labels import review_examples
    from annotation.review.config import result_items
    from annotation.review.file_backend import FileBackend
    from annotation.review.queue import pull, push
    from cumed.store import Store
    from tests.annotation.test_review import annotate
    from tests.cumed.test_store import docs_table

    st = Store(tmp_path / "store")
    st.publish("corpus", docs_table(40))
    res = push(st, "corpus@1", 10, lambda d: FileBackend(d), seed=3)
    tasks = json.loads(open(res["tasks_file"], encoding="utf-8").read())
    docs = [t["data"]["doc_id"] for t in tasks]
    verdicts = {d: result_items("keep") for d in docs[:6]} | {d: result_items("discard", "low_quality") for d in docs[6:9]}
    export = tmp_path / "export.json"
    export.write_text(json.dumps(annotate(tasks, verdicts), ensure_ascii=False), encoding="utf-8")
    pull(st, res["batch"], FileBackend(tmp_path), str(export))

    examples, lineage = review_examples(st, [res["batch"]])
    assert len(examples) == 9 and sum(e.label for e in examples) == 6
    assert lineage["datasets"] == ["corpus@1"] and lineage["label_batches"][0]["batch"] == res["batch"]
    by_text = {t["data"]["text"]: t["data"]["doc_id"] for t in tasks}
    assert all(by_text[e.text] in docs[:9] for e in examples)

    train, _ = data
    m = train_classifier(examples + train[::8], tokenizer="char", seed=0)
    art = save_artifact(m, st, lineage={**lineage, "weak_label_sources": ["toyhom_answers", "cmtmedqa_answers", "huatuo_gpt_answers"]})
    _, meta = load_artifact(art)
    assert meta["lineage"]["label_batches"][0]["batch"] == res["batch"] and meta["lineage"]["datasets"] == ["corpus@1"]
    assert st.names() == ["corpus"]  # _models and _review are not datasets


def test_train_and_publish_chooses_threshold_for_target_precision(data, tmp_path):
    from annotation.quality.workflow import train_and_publish

    train, _ = data
    path, metrics = train_and_publish(tmp_path / "store", train[::4], tokenizer="char", target_precision=0.98,
                                      lineage={"datasets": [], "label_batches": []}, plot=tmp_path / "pr.png")
    _, meta = load_artifact(path)
    assert meta["target_precision"] == 0.98 and 0.0 < meta["threshold"] < 1.0
    assert metrics["at_threshold"]["precision"] >= 0.98
    assert meta["lineage"]["train_rows"] + meta["lineage"]["held_out_rows"] == len(train[::4])
    assert (tmp_path / "pr.png").is_file()
