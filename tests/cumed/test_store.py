"""The versioned store: atomicity under kill -9, concurrency, integrity, determinism, readers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cumed.errors import CumedError
from cumed.store import CRASH_POINTS, Store, parse_ref
from cumed.store.parts import ROW_GROUP_ROWS
from cumed.store.refs import TMP_PREFIX


def docs_table(n: int, seed: int = 0) -> pa.Table:
    ids = [f"doc-{seed}-{i:06d}" for i in range(n)]
    texts = [f"患者{i}号，男，{30 + i % 50}岁，尿频尿急{seed}天。前列腺特异抗原 {i % 9}.{i % 7}ng/ml。" for i in range(n)]
    return pa.table(
        {
            "id": ids,
            "text": texts,
            "source": ["toyhom_csv" if i % 3 else "cmekg" for i in range(n)],
            "category": ["qa" if i % 3 else "knowledge_graph" for i in range(n)],
            "department": ["泌尿外科"] * n,
            "n_chars": [len(t) for t in texts],
            "metadata": [json.dumps({"i": i}) for i in range(n)],
        }
    )


def removed_table(n: int) -> pa.Table:
    t = docs_table(n, seed=9)
    return t.append_column("removed_by", pa.array(["min_length"] * n)).append_column(
        "reason", pa.array([f"min_length: {i} < 50" for i in range(n)])
    )


PUBLISHER = textwrap.dedent(
    """
    import sys, time, json
    sys.path.insert(0, {tests!r})
    from tests.cumed.test_store import docs_table
    from cumed.store import Store
    start = float(sys.argv[3])
    while time.time() < start:
        time.sleep(0.001)
    dv = Store(sys.argv[1]).publish("corpus", docs_table(int(sys.argv[2]), seed=int(sys.argv[4])))
    print(json.dumps({{"version": dv.version}}))
    """
).format(tests=str(Path(__file__).resolve().parents[2]))


def run_publisher(store: Path, n: int, seed: int = 0, start: float = 0.0, env: dict | None = None):
    return subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, str(store), str(n), str(start), str(seed)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_store_consistent(store: Store) -> None:
    for row in store.list():
        assert "error" not in row, row
        assert store.verify(row["ref"]).ok, row


# ---------------------------------------------------------------- references and names


@pytest.mark.parametrize("ref,expected", [("a", ("a", None)), ("a@latest", ("a", None)), ("a@3", ("a", 3)), ("a.b-c_d@v12", ("a.b-c_d", 12))])
def test_parse_ref(ref, expected):
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("bad", ["", "..", "../x", "a/b", "Upper", "-x", "a@0", "a@x", "a@-1", ".hidden"])
def test_bad_references_are_refused(bad):
    with pytest.raises(CumedError):
        parse_ref(bad)


def test_unknown_reference_lists_existing_versions(tmp_path):
    st = Store(tmp_path)
    st.publish("corpus", docs_table(3))
    with pytest.raises(CumedError, match=r"corpus@7 does not exist.*versions: corpus@1"):
        st.get("corpus@7")
    with pytest.raises(CumedError, match=r"no dataset named 'other'.*datasets: corpus"):
        st.get("other")


# ---------------------------------------------------------------- publish basics


def test_publish_layout_and_manifest(tmp_path):
    st = Store(tmp_path)
    dv = st.publish("corpus", docs_table(20), removed=removed_table(5), stats={"chars": 1}, lineage={"parents": ["x@1"]})
    assert dv.ref == "corpus@1"
    root = tmp_path / "corpus" / "v1"
    assert (root / "manifest.json").is_file() and (root / "README.md").is_file()
    m = json.loads((root / "manifest.json").read_text())
    for key in ("name", "version", "created_at", "kind", "schema", "files", "rows", "removed_rows", "stats", "lineage"):
        assert key in m, key
    for key in ("parents", "recipe", "config_hash", "code_version", "inputs", "annotations"):
        assert key in m["lineage"], key
    assert m["rows"] == 20 and m["removed_rows"] == 5 and m["lineage"]["parents"] == ["x@1"]
    paths = sorted(f["path"] for f in m["files"])
    assert paths == ["data/part-00000.parquet", "removed/part-00000.parquet"]
    for f in m["files"]:
        assert pq.ParquetFile(root / f["path"]).metadata.num_rows == f["rows"]
        assert (root / f["path"]).stat().st_size == f["bytes"]
    removed = dv.to_arrow("removed")
    assert removed.column("reason").to_pylist()[0] == "min_length: 0 < 50"


def test_stats_and_card_asked_for_after_the_rows(tmp_path):
    """``stats``/``card`` as callables are called once the rows have passed (figures gathered
    from the rows on their way to the store); one that raises publishes nothing."""
    st = Store(tmp_path)
    seen = []

    def rows():
        for k in range(3):
            t = docs_table(10, seed=k)
            seen.append(t.num_rows)
            yield t

    dv = st.publish("corpus", rows(), removed=removed_table(4), stats=lambda: {"rows_seen": sum(seen)},
                    card=lambda: f"# {sum(seen)} rows\n")
    assert dv.manifest["stats"] == {"rows_seen": 30} and dv.manifest["rows"] == 30
    assert (tmp_path / "corpus" / "v1" / "README.md").read_text() == "# 30 rows\n"

    def lost():
        raise CumedError("documents unaccounted for (x: read 31 != kept 30 + removed 0)")

    with pytest.raises(CumedError, match="unaccounted"):
        st.publish("corpus", docs_table(31), stats=lost)
    assert st.versions("corpus") == [1]
    assert not [p.name for p in (tmp_path / "corpus").iterdir() if p.name.startswith(TMP_PREFIX)]  # no staging left


def test_schema_mismatch_names_column_and_type(tmp_path):
    st = Store(tmp_path)
    bad = docs_table(3).set_column(5, "n_chars", pa.array(["1", "2", "3"]))
    with pytest.raises(CumedError, match=r"column 'n_chars' has type string, expected int64"):
        st.publish("corpus", bad)
    with pytest.raises(CumedError, match=r"column 'text' is missing"):
        st.publish("corpus", docs_table(3).drop_columns(["text"]))
    with pytest.raises(CumedError, match=r"column 'reason' is missing"):
        st.publish("corpus", docs_table(3), removed=docs_table(2).append_column("removed_by", pa.array(["x", "y"])))
    assert st.versions("corpus") == []  # nothing half-published
    assert not list((tmp_path / "corpus").glob(".tmp-*"))


def test_large_versions_roll_over_into_several_files(tmp_path, monkeypatch):
    import cumed.store.parts as store_mod

    monkeypatch.setattr(store_mod, "FILE_ROWS", ROW_GROUP_ROWS * 2)
    n = ROW_GROUP_ROWS * 5 + 11
    st = Store(tmp_path)
    dv = st.publish("corpus", docs_table(n))
    names = [f["path"] for f in dv.manifest["files"]]
    assert names == [f"data/part-{i:05d}.parquet" for i in range(3)]
    assert [f["rows"] for f in dv.manifest["files"]] == [ROW_GROUP_ROWS * 2, ROW_GROUP_ROWS * 2, ROW_GROUP_ROWS + 11]
    assert st.verify(dv.ref).ok
    assert dv.to_arrow().column("id").to_pylist() == docs_table(n).column("id").to_pylist()


def test_extra_columns_are_kept(tmp_path):
    t = docs_table(4).append_column("quality", pa.array([0.1, 0.2, 0.3, 0.4]))
    dv = Store(tmp_path).publish("corpus", t)
    assert dv.to_arrow().column("quality").to_pylist() == [0.1, 0.2, 0.3, 0.4]


def test_identical_content_returns_existing_version(tmp_path):
    st = Store(tmp_path)
    a = st.publish("corpus", docs_table(50))
    b = st.publish("corpus", docs_table(50))
    assert (a.version, b.version) == (1, 1)
    c = st.publish("corpus", docs_table(51))
    assert c.version == 2


def test_deterministic_bytes_whatever_the_batching(tmp_path):
    n = ROW_GROUP_ROWS * 2 + 123
    t = docs_table(n)
    one = Store(tmp_path / "a").publish("corpus", t)
    chunked = Store(tmp_path / "b").publish("corpus", [t.slice(i, 1000) for i in range(0, n, 1000)])
    assert one.content_hash == chunked.content_hash
    assert [f["sha256"] for f in one.manifest["files"]] == [f["sha256"] for f in chunked.manifest["files"]]
    assert pq.ParquetFile(one.files()[0]).metadata.num_row_groups == 3


# ---------------------------------------------------------------- integrity


def test_verify_names_flipped_and_deleted_files(tmp_path):
    st = Store(tmp_path)
    dv = st.publish("corpus", docs_table(100), removed=removed_table(10))
    assert st.verify("corpus@1").ok
    victim = dv.files("data")[0]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    victim.write_bytes(bytes(raw))
    res = st.verify("corpus@1")
    assert not res.ok and res.file == "data/part-00000.parquet" and "sha256" in res.problem

    dv2 = st.publish("corpus", docs_table(101), removed=removed_table(10))
    dv2.files("removed")[0].unlink()
    res = st.verify(dv2.ref)
    assert not res.ok and res.file == "removed/part-00000.parquet" and res.problem == "file missing"


# ---------------------------------------------------------------- atomicity and concurrency


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_at_every_point_leaves_no_partial_version(tmp_path, point):
    st = Store(tmp_path)
    st.publish("corpus", docs_table(10, seed=1))
    proc = run_publisher(tmp_path, 20_000, seed=2, env={"CUMED_STORE_CRASH_AT": point})
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    versions = st.versions("corpus")
    # Before the rename the new version must be invisible; after it, it must be complete.
    assert versions == ([1, 2] if point == "renamed" else [1])
    assert_store_consistent(st)
    debris = list((tmp_path / "corpus").glob(".tmp-*"))
    assert bool(debris) == (point != "renamed")
    assert len(st.gc()) == len(debris)
    assert not list((tmp_path / "corpus").glob(".tmp-*"))
    assert_store_consistent(st)


def _staging_started(folder: Path, proc, timeout: float = 60) -> float:
    deadline = time.time() + timeout
    while not list(folder.glob(".tmp-*")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    return time.perf_counter()


def test_kill_at_random_moments(tmp_path):
    """SIGKILL at random moments of a publish: each kill must land mid-publish (the publisher had
    started staging and had not finished), and the store stays consistent every time."""
    import random

    st = Store(tmp_path)
    n = 200_000
    # how long a publish stages, measured on this machine, so the kills spread over that window
    proc = run_publisher(tmp_path, n, seed=99)
    t0 = _staging_started(tmp_path / "corpus", proc)
    proc.wait(timeout=120)
    span = time.perf_counter() - t0
    assert proc.returncode == 0 and st.versions("corpus") == [1]
    rng = random.Random(7)
    mid_publish = 0
    for seed in range(6):
        proc = run_publisher(tmp_path, n, seed=seed)
        _staging_started(tmp_path / "corpus", proc)
        time.sleep(rng.uniform(0.05, 0.6) * span)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        debris = list((tmp_path / "corpus").glob(".tmp-*"))
        if proc.returncode == -signal.SIGKILL and debris:
            mid_publish += 1  # killed while its staging folder existed: between start and rename
        assert_store_consistent(st)
        st.gc()
        assert not list((tmp_path / "corpus").glob(".tmp-*"))
    assert st.versions("corpus")[0] == 1
    assert mid_publish >= 4, f"only {mid_publish} of 6 kills landed mid-publish (publish takes {span:.2f} s)"


def test_gc_spares_a_live_publisher(tmp_path):
    st = Store(tmp_path)
    live = tmp_path / "corpus" / ".tmp-live"
    live.mkdir(parents=True)
    (live / ".owner").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
    assert st.gc() == []
    assert live.exists()


def test_gc_waits_for_a_commit_in_flight(tmp_path):
    """gc during the fsync-and-rename window of a publish (held open for 3 s) must not touch it."""
    st = Store(tmp_path)
    proc = run_publisher(tmp_path, 5_000, seed=3, env={"CUMED_STORE_PAUSE_AT": "before_rename:3"})
    deadline = time.time() + 60
    while not list((tmp_path / "corpus").glob(".tmp-*/manifest.json")) and time.time() < deadline:
        time.sleep(0.01)
    assert list((tmp_path / "corpus").glob(".tmp-*/manifest.json")), "the publisher never reached its commit"
    assert st.gc() == []  # waits on the publish lock; the staged version is never removed
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert st.versions("corpus") == [1] and st.verify("corpus@1").ok
    assert not (tmp_path / "corpus" / "v1" / ".owner").exists()


def test_gc_in_a_loop_beside_20_publishes(tmp_path):
    st = Store(tmp_path)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.cumed.test_store import docs_table
        from cumed.store import Store
        st = Store(sys.argv[1])
        for i in range(20):
            st.publish("corpus", docs_table(2_000 + i, seed=i))
    """)
    pub = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stderr=subprocess.PIPE, text=True)
    sweeps = removed = 0
    while pub.poll() is None:
        removed += len(st.gc())
        sweeps += 1
    assert pub.returncode == 0, pub.stderr.read()
    assert sweeps > 20 and removed == 0
    assert st.versions("corpus") == list(range(1, 21))
    assert_store_consistent(st)


def test_gc_reads_another_hosts_heartbeat(tmp_path):
    st = Store(tmp_path)
    other = tmp_path / "corpus" / ".tmp-other-host"
    other.mkdir(parents=True)
    (other / ".owner").write_text(json.dumps({"pid": 1, "host": "another-host.example"}))
    assert st.gc() == [] and other.exists()  # touched just now: alive on its host
    from cumed.store.local import STALE_S

    stale = time.time() - STALE_S - 5
    os.utime(other / ".owner", (stale, stale))
    os.utime(other, (stale, stale))
    assert st.gc() == ["corpus/.tmp-other-host"] and not other.exists()


def test_two_concurrent_publishers_get_distinct_complete_versions(tmp_path):
    st = Store(tmp_path)
    start = time.time() + 2.0
    procs = [run_publisher(tmp_path, 30_000, seed=s, start=start) for s in (1, 2)]
    versions = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        versions.append(json.loads(stdout)["version"])
    assert sorted(versions) == [1, 2]
    assert_store_consistent(st)
    assert {st.get("corpus@1").content_hash, st.get("corpus@2").content_hash} == {
        st.get(f"corpus@{v}").content_hash for v in versions
    }
    assert st.get("corpus@1").content_hash != st.get("corpus@2").content_hash


# ---------------------------------------------------------------- readers


def test_same_rows_through_every_reader(tmp_path):
    import duckdb

    st = Store(tmp_path)
    dv = st.publish("corpus", [docs_table(ROW_GROUP_ROWS + 7)])
    ref = docs_table(ROW_GROUP_ROWS + 7).to_pylist()
    assert dv.to_arrow().to_pylist() == ref
    assert dv.to_pandas().to_dict("records") == ref
    con = duckdb.connect()
    rows = con.sql(f"select * from read_parquet('{dv.data_dir}/*.parquet')").to_arrow_table()
    assert rows.to_pylist() == ref
    assert dv.to_hf().to_list() == ref
    import pyarrow.dataset as ds

    assert ds.dataset(str(dv.data_dir)).to_table().to_pylist() == ref
    streamed = [r for b in dv.iter_batches(batch_size=1000) for r in b.to_pylist()]
    assert streamed == ref


def test_diff_reports_added_and_dropped(tmp_path):
    st = Store(tmp_path)
    st.publish("corpus", docs_table(10))
    st.publish("corpus", pa.concat_tables([docs_table(10).slice(2), docs_table(1, seed=5)]))
    d = st.diff("corpus@1", "corpus@2")
    assert d["rows"] == [10, 9] and d["added"] == 1 and d["dropped"] == 2
    assert d["dropped_examples"] == ["doc-0-000000", "doc-0-000001"]
