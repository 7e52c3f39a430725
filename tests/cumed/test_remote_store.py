"""The s3:// store against a real local S3-compatible server (moto_server on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

pytest.importorskip("boto3")
pytest.importorskip("s3fs")
MOTO = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
if not Path(MOTO).exists():  # pragma: no cover
    pytest.skip("moto[server] not installed (pip install 'cumed[test]')", allow_module_level=True)

from cumed.store.s3 import RemoteStore  # noqa: E402
from cumed.store import Store  # noqa: E402
from tests.cumed.test_store import docs_table, removed_table  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from cumed.cli import main; sys.argv[0] = 'cumed'; main()"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_moto(extra_env: dict | None = None):
    port = _free_port()
    proc = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **(extra_env or {})})
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    pytest.skip("moto_server did not start")


@pytest.fixture(scope="session")
def s3_server():
    proc, url = _start_moto()
    env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "2"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield url
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def bucket(s3_server):
    import boto3

    name = f"cumed-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def _env(**kw) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), **kw}


def cli(*args, env=None, timeout=60):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=REPO, env=env or _env(), timeout=timeout)


def test_publish_list_pull_verify_round_trip(bucket, tmp_path):
    root = f"s3://{bucket}/team"
    st = Store(root)
    assert isinstance(st, RemoteStore)
    dv = st.publish("corpus", docs_table(3000), removed=removed_table(20))
    assert dv.ref == "corpus@1" and dv.rows == 3000 and dv.removed_rows == 20
    local = Store(tmp_path / "local").publish("corpus", docs_table(3000), removed=removed_table(20))
    assert dv.content_hash == local.content_hash
    assert [(f["path"], f["sha256"]) for f in dv.manifest["files"]] == [(f["path"], f["sha256"]) for f in local.manifest["files"]]
    # identical content returns latest
    assert st.publish("corpus", docs_table(3000), removed=removed_table(20)).ref == "corpus@1"
    assert [r["ref"] for r in st.list()] == ["corpus@1"]
    assert st.verify("corpus").ok
    assert st.get("corpus").to_arrow().equals(local.to_arrow())
    assert "corpus v1" in st.get("corpus").card()
    # transparent reads through the CLI
    r = cli("datasets", "list", "--store", root, "--json")
    assert r.returncode == 0, r.stderr
    assert [d["ref"] for d in json.loads(r.stdout)["datasets"]] == ["corpus@1"]
    r = cli("datasets", "show", "corpus@1", "--store", root, "--json")
    assert json.loads(r.stdout)["content_hash"] == local.content_hash
    r = cli("datasets", "verify", "corpus", "--store", root, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"]
    # pull (CLI) verifies and lands as a normal local version
    dest = tmp_path / "pulled"
    r = cli("datasets", "pull", f"{root}/corpus@1", "--to", str(dest), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["downloaded"] == 2 and res["skipped"] == 0
    pulled = Store(dest).get("corpus@1")
    assert pulled.content_hash == local.content_hash and Store(dest).verify("corpus@1").ok
    # push a local version: same hashes, next version number
    local2 = Store(tmp_path / "local").publish("corpus", docs_table(500, seed=3))
    r = cli("datasets", "push", "corpus@2", "--store", str(tmp_path / "local"), "--to", root, "--json")
    assert r.returncode == 0, r.stderr
    pushed = json.loads(r.stdout)
    assert pushed["ref"] == "corpus@2" and pushed["content_hash"] == local2.content_hash
    assert st.verify("corpus@2").ok
    assert st.diff("corpus@1", "corpus@2")["added"] == 500


PUBLISHER = textwrap.dedent(
    """
    import sys, time, json
    from tests.cumed.test_store import docs_table, removed_table
    from cumed.store import Store
    start = float(sys.argv[4])
    while time.time() < start:
        time.sleep(0.001)
    st = Store(sys.argv[1])
    dv = st.publish("corpus", docs_table(int(sys.argv[2]), seed=int(sys.argv[3])), removed=removed_table(50))
    print(json.dumps({"version": dv.version, "hash": dv.content_hash, "push": st.last_push}))
    """
)


def _publisher(root, n, seed, start=0.0, env=None):
    return subprocess.Popen([sys.executable, "-c", PUBLISHER, root, str(n), str(seed), str(start)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env or _env())


def test_concurrent_publishers_get_distinct_complete_versions(bucket):
    root = f"s3://{bucket}/p"
    start = time.time() + 4
    procs = [_publisher(root, 2000, seed, start) for seed in (1, 2)]
    outs = []
    for p in procs:
        o, e = p.communicate(timeout=60)
        assert p.returncode == 0, e
        outs.append(json.loads(o))
    assert sorted(o["version"] for o in outs) == [1, 2]
    st = Store(root)
    assert st.versions("corpus") == [1, 2]
    for o in outs:
        dv = st.get(f"corpus@{o['version']}")
        assert dv.content_hash == o["hash"] and st.verify(dv.ref).ok


def _keys(bucket, prefix):
    import boto3

    return sorted(o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def test_concurrent_identical_publishers_share_one_version(bucket):
    """As under the local lock: identical rows published at once give one version, not twins."""
    root = f"s3://{bucket}/same"
    start = time.time() + 4
    procs = [_publisher(root, 3000, 7, start) for _ in range(3)]
    outs = []
    for p in procs:
        o, e = p.communicate(timeout=120)
        assert p.returncode == 0, e
        outs.append(json.loads(o))
    assert [o["version"] for o in outs] == [1, 1, 1]
    assert Store(root).versions("corpus") == [1]
    # the withdrawn claims leave nothing behind
    assert {k.split("/")[2] for k in _keys(bucket, "same/")} == {"v1"}


def test_identical_publish_after_a_dead_publisher_resumes_its_version(bucket, tmp_path, monkeypatch):
    import boto3

    root = f"s3://{bucket}/dead"
    # the same host: the killed publisher's pid is gone, so the re-run takes its number over at
    # once and uploads only what the dead one had not
    p = _publisher(root, 2000, 9, env=_env(CUMED_REMOTE_CRASH_AFTER_UPLOADS="1"))
    p.communicate(timeout=60)
    assert p.returncode == -9
    before = [k.split("/v1/", 1)[1] for k in _keys(bucket, "dead/corpus/v1/")]
    landed = [k for k in before if k.endswith(".parquet")]
    assert len(landed) == 1 and "manifest.json" not in before  # killed after one of two files
    p = _publisher(root, 2000, 9)  # would wait STALE_S (120 s) if it could not tell
    o, e = p.communicate(timeout=60)
    assert p.returncode == 0, e
    res = json.loads(o)
    assert res["version"] == 1 and Store(root).versions("corpus") == [1]
    assert res["push"] == {"resumed": True, "uploaded": 1, "skipped": landed}
    assert {".claim", ".claim-1"} <= {k.split("/v1/", 1)[1] for k in _keys(bucket, "dead/corpus/v1/")}
    assert Store(root).verify("corpus@1").ok
    # a dead publisher of OTHER content is not taken over: the next number
    p = _publisher(root, 2000, 10, env=_env(CUMED_REMOTE_CRASH_AFTER_UPLOADS="1"))
    p.communicate(timeout=60)
    assert p.returncode == -9
    p = _publisher(root, 2000, 11)
    o, e = p.communicate(timeout=60)
    assert p.returncode == 0, e
    assert json.loads(o)["version"] == 3 and json.loads(o)["push"]["resumed"] is False
    # another host's claim with the same content and no heartbeat: presumed dead after STALE_S
    root2 = f"s3://{bucket}/other"
    want = Store(tmp_path / "l").publish("corpus", docs_table(500, seed=4)).content_hash
    boto3.client("s3").put_object(Bucket=bucket, Key="other/corpus/v1/.claim",
                                  Body=json.dumps({"host": "elsewhere", "pid": 1, "content_hash": want}).encode())
    monkeypatch.setenv("CUMED_REMOTE_STALE_S", "1.5")
    t0 = time.monotonic()
    dv = Store(root2).publish("corpus", docs_table(500, seed=4))
    waited = time.monotonic() - t0
    assert dv.version == 2 and dv.content_hash == want
    assert waited >= 1.5  # it did wait for the other host before going ahead


def test_killed_publisher_leaves_no_version_and_gc_cleans(bucket):
    import boto3

    root = f"s3://{bucket}/k"
    p = _publisher(root, 4000, 5, env=_env(CUMED_REMOTE_CRASH_AFTER_UPLOADS="1"))
    p.communicate(timeout=60)
    assert p.returncode == -9
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="k/").get("Contents", [])]
    assert "k/corpus/v1/.claim" in keys and "k/corpus/v1/data/part-00000.parquet" in keys
    assert not any(k.endswith("manifest.json") for k in keys)
    st = Store(root)
    assert st.versions("corpus") == [] and st.list() == []
    assert st.gc() == []  # within the grace period: maybe a live publisher
    r = cli("datasets", "gc", "--store", root, "--min-age", "0", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["removed"] == ["corpus/v1"]
    assert boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="k/").get("KeyCount") == 0
    # the next publish still works
    assert st.publish("corpus", docs_table(10)).version == 1


def test_killed_pull_resumes_and_downloads_only_missing(bucket, tmp_path):
    root = f"s3://{bucket}/r"
    Store(root).publish("corpus", docs_table(2000), removed=removed_table(30))
    dest = tmp_path / "cache"
    r = cli("datasets", "pull", "corpus", "--store", root, "--to", str(dest), "--json",
            env=_env(CUMED_REMOTE_CRASH_AFTER_DOWNLOADS="1"))
    assert r.returncode == -9
    assert Store(dest).versions("corpus") == []  # nothing half-pulled is visible
    # what a download killed mid-transfer leaves: boto3's temporary file beside the target
    (staging,) = [p for p in (dest / "corpus").iterdir() if p.name.endswith("pull-v1")]
    stray = staging / "removed" / "part-00000.parquet.part.e8ea2bB4"
    stray.write_bytes(b"half a file")
    r = cli("datasets", "pull", "corpus", "--store", root, "--to", str(dest), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert (res["downloaded"], res["skipped"]) == (1, 1)
    assert Store(dest).verify("corpus@1").ok  # the stray file was not committed with the version
    assert not list((dest / "corpus").rglob("*.part.*"))
    # default cache location under $CUMED_CACHE/<bucket>/<prefix>
    r = cli("datasets", "pull", "corpus@1", "--store", root, "--json", env=_env(CUMED_CACHE=str(tmp_path / "c")))
    assert r.returncode == 0 and Path(json.loads(r.stdout)["path"]) == tmp_path / "c" / bucket / "r" / "corpus" / "v1"


@pytest.fixture(scope="module")
def auth_server():
    proc, url = _start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})  # every request must be authenticated
    yield url
    proc.terminate()
    proc.wait(10)


def test_clear_errors(bucket, auth_server):
    cases = [
        (_env(AWS_ENDPOINT_URL=auth_server), f"s3://{bucket}", "access denied"),
        (_env(), "s3://no-such-bucket-cumed", "does not exist"),
        (_env(AWS_ENDPOINT_URL=f"http://127.0.0.1:{_free_port()}"), f"s3://{bucket}", "cannot reach"),
    ]
    for env, root, needle in cases:
        r = cli("datasets", "list", "--store", root, env=env)
        assert r.returncode == 1, (needle, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr, r.stderr
        assert "testing" not in r.stderr  # credentials never echoed


def test_hf_export_loads_with_splits(bucket, tmp_path):
    datasets = pytest.importorskip("datasets")
    root = f"s3://{bucket}/hf"
    st = Store(root)
    st.publish("corpus", docs_table(100), removed=removed_table(3))
    n = 60
    conv = pa.table({
        "id": [f"c{i}" for i in range(n)],
        "messages": [[{"role": "user", "content": f"问{i}"}, {"role": "assistant", "content": f"答{i}"}] for i in range(n)],
        "source": ["s"] * n, "department": ["d"] * n, "n_turns": [2] * n,
        "split": ["train" if i % 3 else ("test" if i % 2 else "validation") for i in range(n)],
    })
    from cumed.store import LocalStore

    LocalStore(tmp_path / "l").publish("sft", conv, kind="conversations")
    out = tmp_path / "hf-docs"
    r = cli("datasets", "export", "corpus", "--store", root, "--format", "hf", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    ds = datasets.load_dataset(str(out))
    assert list(ds) == ["train"] and ds["train"].num_rows == 100
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("---\nconfigs:") or "configs:" in readme.split("---")[1]
    assert "## Lineage" in readme and "## Sources" in readme and "toyhom_csv" in readme
    out2 = tmp_path / "hf-sft"
    r = cli("datasets", "export", "sft", "--store", str(tmp_path / "l"), "--format", "hf", "--out", str(out2), "--json")
    assert r.returncode == 0, r.stderr
    ds2 = datasets.load_dataset(str(out2))
    assert sorted(ds2) == ["test", "train", "validation"]
    assert ds2["train"].num_rows == 40 and ds2["test"].num_rows + ds2["validation"].num_rows == 20
    assert ds2["train"][0]["messages"][0]["role"] == "user"


def test_full_s3_reference_is_read_from_its_own_store(bucket, tmp_path):
    """A trainer pastes ``s3://BUCKET/PREFIX/NAME@N`` without --store: show, verify and train read that store."""
    pytest.importorskip("torch")
    from tests.training.conftest import conversations

    root = f"s3://{bucket}/teamA"
    dv = Store(root).publish("toy-sft", conversations(), kind="conversations")
    env = _env(CUMED_STORE=str(tmp_path / "no-local-store"), CUMED_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    r = cli("datasets", "show", f"{root}/toy-sft@1", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["content_hash"] == dv.content_hash
    assert cli("datasets", "verify", f"{root}/toy-sft", "--json", env=env).returncode == 0
    r = cli("train", "sft", "--dataset", f"{root}/toy-sft@1", "--max-steps", "2", "--runs-dir", str(tmp_path / "runs"),
            "--json", env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["steps"] == 2 and res["dataset"] == "toy-sft@1"
    record = json.loads((Path(res["run"]) / "datasets.json").read_text())["train"]
    assert record["content_hash"] == dv.content_hash and record["path"] == f"{root}/toy-sft/v1"
    # a plain reference still goes to --store / CUMED_STORE, and says so when that store is missing
    r = cli("train", "sft", "--dataset", "toy-sft@1", "--max-steps", "1", "--json", env=env, timeout=300)
    assert r.returncode == 1 and "no-local-store" in r.stderr and "does not exist" in r.stderr
