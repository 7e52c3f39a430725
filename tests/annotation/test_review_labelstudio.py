"""Review on a real Label Studio server: push -> annotate via the SDK -> pull -> apply."""

from __future__ import annotations

import json

from annotation.labelstudio.backend import LabelStudioBackend
from annotation.review.apply import apply
from annotation.review.config import result_items
from annotation.review.file_backend import FileBackend
from annotation.review.queue import ReviewState, pull, push
from cumed.store import Store
from tests.cumed.test_store import docs_table


def test_review_round_trip_on_a_real_server(ls_server, dataset, tmp_path):
    store = Store(tmp_path / "store")
    store.publish(dataset, docs_table(30))
    backend = LabelStudioBackend(token_file=ls_server.env_file, cache_dir=tmp_path / "cache")
    factory = lambda batch_dir: backend  # noqa: E731

    first = push(store, f"{dataset}@1", 10, factory, seed=1)
    assert first["backend"] == "labelstudio" and first["pushed"] == 10
    batch = first["batch"]
    tasks = backend.pull(batch, dataset)
    by_doc = {t["data"]["doc_id"]: t["id"] for t in tasks}
    docs = sorted(by_doc)
    backend.client.annotations.create(id=by_doc[docs[0]], result=result_items("discard", "low_quality"))
    backend.client.annotations.create(id=by_doc[docs[1]], result=result_items("discard", "unsafe_advice", "剂量错误"))
    backend.client.annotations.create(id=by_doc[docs[2]], result=result_items("keep"))
    # Label Studio stores anything: an invalid result must be reported and skipped, not counted.
    backend.client.annotations.create(id=by_doc[docs[3]], result=result_items("maybe"))

    got = pull(store, batch, backend)
    assert got["new_decisions"] == 3 and got["decisions"] == 3
    assert [p["task_id"] for p in got["problems"]] == [by_doc[docs[3]]]
    again = pull(store, batch, backend)
    assert again["new_decisions"] == 0 and again["decisions"] == 3

    # Re-pushing never queues a document twice: the project ends with 30 distinct documents.
    second = push(store, f"{dataset}@1", 50, factory, seed=1)
    assert second["pushed"] == 20
    third = push(store, f"{dataset}@1", 50, factory, seed=1)
    assert third["tasks"] == 0 and third["batch"] is None
    project = backend.find_project(dataset)
    all_docs = [t.data["doc_id"] for t in backend.client.tasks.list(project=project, fields="all")]
    assert len(all_docs) == len(set(all_docs)) == 30

    dv, review = apply(store, f"{dataset}@1", [batch])
    removed = dv.to_pandas("removed").set_index("id")
    assert set(removed.index) == {docs[0], docs[1]}
    assert removed.loc[docs[1], "reason"] == "manual_review:unsafe_advice"
    assert dv.rows == 28 and review["kept_by_review"] == 1
    ann = dv.manifest["lineage"]["annotations"][0]
    from annotation.labelstudio.server import read_env_file

    # Annotators are people (the server's user e-mail), not numeric user ids.
    assert ann["batch"] == batch and len(ann["annotation_ids"]) == 3
    assert ann["annotators"] == [read_env_file(ls_server.env_file)["LABEL_STUDIO_USERNAME"]]

    # The file backend reads the server's own JSON export to the same decisions.
    export = tmp_path / "export.json"
    export.write_bytes(b"".join(backend.client.projects.exports.download_sync(project, export_type="JSON",
                                                                              download_all_tasks=True)))
    ReviewState(store, dataset)  # same state folder
    (store.root / "_review" / dataset / batch / "annotations.jsonl").unlink()
    from_file = pull(store, batch, FileBackend(tmp_path), str(export))
    assert from_file["new_decisions"] == 3 and len(from_file["problems"]) == 1
    exported = json.loads(export.read_text(encoding="utf-8"))
    assert any("剂量错误" in json.dumps(t, ensure_ascii=False) for t in exported)
