"""A manifest is untrusted input: whoever can write to the team bucket (or the shared disk) writes
it. A tampered one is refused with one line before any path in it is joined to a local folder."""

from __future__ import annotations

import json
import os

import pytest

from cumed.errors import CumedError
from cumed.store import Store
from tests.cumed.test_remote_store import bucket, cli, s3_server  # noqa: F401 - fixtures
from tests.cumed.test_store import docs_table

TAMPER = {
    "parent path": lambda m: m["files"][0].update(path="../../../../escaped.txt"),
    "absolute path": lambda m: m["files"][0].update(path="/tmp/cumed-escaped.txt"),
    "nested path": lambda m: m["files"][0].update(path="data/../../escaped.txt"),
    "backslash path": lambda m: m["files"][0].update(path="data\\..\\escaped.txt"),
    "other name": lambda m: m.update(name="../evil"),
    "other version": lambda m: m.update(version=7),
    "bad sha256": lambda m: m["files"][0].update(sha256="x" * 64),
    "files not a list": lambda m: m.update(files={"path": "data/part-00000.parquet"}),
}


@pytest.mark.parametrize("how", sorted(TAMPER))
def test_local_store_refuses_a_tampered_manifest(how, tmp_path):
    st = Store(tmp_path / "store")
    dv = st.publish("corpus", docs_table(50))
    mpath = dv.path / "manifest.json"
    m = json.loads(mpath.read_text())
    TAMPER[how](m)
    mpath.write_text(json.dumps(m))
    with pytest.raises(CumedError) as e:
        st.get("corpus@1")
    assert str(mpath) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("how", ["parent path", "absolute path", "other name", "other version"])
def test_pull_refuses_a_tampered_remote_manifest_and_writes_nothing(how, bucket, tmp_path):  # noqa: F811
    import boto3

    s3 = boto3.client("s3")
    remote = f"s3://{bucket}/team"
    Store(remote).publish("corpus", docs_table(50))
    key = "team/corpus/v1/manifest.json"
    m = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    # the attacker also uploads the payload and records its real sha256 and size: hashes do not help
    payload = b"echo pwned\n"
    import hashlib

    TAMPER[how](m)
    if how in ("parent path", "absolute path"):
        m["files"][0].update(sha256=hashlib.sha256(payload).hexdigest(), bytes=len(payload))
        s3.put_object(Bucket=bucket, Key="team/corpus/v1/" + m["files"][0]["path"].lstrip("/"), Body=payload)
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(m).encode())
    target = tmp_path / "deep" / "a" / "b" / "c" / "pulled"
    before = set(os.listdir(tmp_path))
    p = cli("datasets", "pull", "corpus@1", "--store", remote, "--to", str(target))
    assert p.returncode == 1, p.stdout
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: manifest s3://") and "Traceback" not in p.stderr
    assert set(os.listdir(tmp_path)) == before  # nothing written, inside the target or outside it
    assert not (tmp_path / "escaped.txt").exists() and not os.path.exists("/tmp/cumed-escaped.txt")
    # verify and show refuse it the same way
    assert cli("datasets", "verify", "corpus@1", "--store", remote).returncode == 1
