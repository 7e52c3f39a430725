"""Model artifacts are versions of the store (kind ``model``): the dataset publish protocol, verify,
and push/pull to an S3-compatible server (a real moto_server), through the CLI a teammate uses."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from annotation.quality.artifact import save_artifact
from annotation.quality.train import train_classifier
from cumed.errors import CumedError
from cumed.store import Store
from curation.quality.artifact import load_artifact, resolve_artifact
from tests.cumed.test_remote_store import bucket, cli, s3_server  # noqa: F401 - fixtures

GOOD = ["尿频尿急，建议到泌尿外科做尿常规检查，明确诊断后再用药。", "前列腺炎需要规律作息，避免久坐，配合药物治疗。",
        "血肌酐升高提示肾功能受损，建议复查并控制血压。", "肾结石较小者多喝水，必要时体外碎石。"]
BAD = ["点击这里领取优惠券！！！加微信", "ｘｘｘ广告广告广告广告", "版权所有 转载请注明出处 下一页", "<div>登录 注册</div>"]


@pytest.fixture(scope="module")
def model():
    examples = [(t, "keep") for t in GOOD * 5] + [(t, "discard") for t in BAD * 5]
    return train_classifier(examples, tokenizer="char", seed=0, epoch=5)


def test_model_is_published_by_the_store_protocol(model, tmp_path):
    st = Store(tmp_path / "store")
    v1 = save_artifact(model, st, threshold=0.4,
                       lineage={"review": {"datasets": ["corpus@2"], "label_batches": [{"batch": "corpus.r001"}]}})
    assert v1 == tmp_path / "store" / "_models" / "quality" / "v1"
    dv = st.get("_models/quality@1")
    # its training data in the lineage keys every version has, the detail beside them
    assert dv.manifest["lineage"]["parents"] == ["corpus@2"]
    assert dv.manifest["lineage"]["annotations"] == ["review:corpus.r001"]
    assert dv.manifest["lineage"]["review"]["label_batches"] == [{"batch": "corpus.r001"}]
    assert dv.kind == "model" and {f["path"] for f in dv.manifest["files"]} == {"data/model.bin", "data/meta.json"}
    assert all(f["rows"] is None and len(f["sha256"]) == 64 for f in dv.manifest["files"])
    assert st.verify("_models/quality@1").ok
    # the same model and metadata again: the same version (content hash), as for datasets
    assert save_artifact(model, st, threshold=0.4,
                         lineage={"review": {"datasets": ["corpus@2"], "label_batches": [{"batch": "corpus.r001"}]}}) == v1
    v2 = save_artifact(model, st, threshold=0.6)
    assert v2.name == "v2" and not list(v2.parent.glob(".tmp-*"))
    assert st.names() == []  # models are not datasets
    assert resolve_artifact("quality@latest", st) == v2 and resolve_artifact("_models/quality@1", st) == v1
    # damage is caught by verify and by the loader
    (v2 / "data" / "model.bin").write_bytes(b"garbage")
    assert not st.verify("_models/quality@2").ok and st.verify("_models/quality@2").file == "data/model.bin"
    with pytest.raises(CumedError, match="sha256"):
        load_artifact(v2)


def test_a_file_version_takes_plain_file_names_only(tmp_path):
    st = Store(tmp_path / "store").models()
    for bad in ("../../.bashrc", "sub/model.bin", ".hidden", ""):
        with pytest.raises(CumedError, match="bad file name"):
            st.publish_files("quality", {bad: b"x"})
    with pytest.raises(CumedError, match="file-version kind"):
        st.publish_files("quality", {"model.bin": b"x"}, kind="documents")
    assert st.names() == []


def test_push_and_pull_a_model_like_a_dataset(model, bucket, tmp_path):  # noqa: F811 - fixture
    local = tmp_path / "local"
    save_artifact(model, local, threshold=0.4, lineage={"datasets": ["corpus@1"]})
    remote = f"s3://{bucket}/team"
    pushed = json.loads(cli("datasets", "push", "_models/quality@1", "--store", str(local), "--to", remote,
                            "--json").stdout)
    assert pushed["ref"] == "quality@1" and pushed["path"] == f"{remote}/_models/quality/v1"
    ok = json.loads(cli("datasets", "verify", "_models/quality@1", "--store", remote, "--json").stdout)
    assert ok["ok"] and ok["files_checked"] == 2
    # pushing it again is the same remote version
    again = json.loads(cli("datasets", "push", "_models/quality@1", "--store", str(local), "--to", remote,
                           "--json").stdout)
    assert again["ref"] == "quality@1"
    pulled = json.loads(cli("datasets", "pull", "_models/quality@1", "--store", remote, "--to", str(tmp_path / "mine"),
                            "--json").stdout)
    assert pulled["downloaded"] == 2 and pulled["path"] == str(tmp_path / "mine" / "_models" / "quality" / "v1")
    loaded, meta = load_artifact(pulled["path"])
    assert meta["threshold"] == 0.4 and meta["lineage"]["datasets"] == ["corpus@1"]
    texts = GOOD + BAD
    assert np.array_equal(loaded.score(texts), model.score(texts))
    # a build on a machine that only has the bucket finds the model there (pulled into the cache)
    os.environ["CUMED_CACHE"] = str(tmp_path / "cache")
    try:
        path = resolve_artifact("quality@latest", remote)
    finally:
        os.environ.pop("CUMED_CACHE")
    assert path.is_relative_to(tmp_path / "cache") and load_artifact(path)[1]["version"] == 1
    # a second pull downloads nothing
    res = json.loads(cli("datasets", "pull", "_models/quality@1", "--store", remote, "--to", str(tmp_path / "mine"),
                         "--json").stdout)
    assert res["downloaded"] == 0 and res["skipped"] == 2


def test_gc_cleans_crashed_model_publishes_too(tmp_path):
    st = Store(tmp_path / "store")
    st.models().publish_files("quality", {"model.bin": b"m", "meta.json": b"{}"})
    dead = tmp_path / "store" / "_models" / "quality" / ".tmp-crashed"
    (dead / "data").mkdir(parents=True)
    (dead / ".owner").write_text(json.dumps({"pid": 2**22 + 12345, "host": os.uname().nodename, "t": 0}))
    assert st.gc() == ["_models/quality/.tmp-crashed"] and not dead.exists()
    assert st.verify("_models/quality@1").ok


def test_remote_gc_cleans_abandoned_model_claims(bucket, tmp_path):  # noqa: F811 - fixture
    import boto3

    boto3.client("s3").put_object(Bucket=bucket, Key="team/_models/quality/v7/.claim", Body=b"{}")
    res = json.loads(cli("datasets", "gc", "--store", f"s3://{bucket}/team", "--min-age", "0", "--json").stdout)
    assert res["removed"] == ["_models/quality/v7"]
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="team/_models/")
