"""The ``cumed`` CLI contract: --json, exit codes and one clear line per user error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from cumed.store import Store
from tests.cumed.test_store import docs_table


def cumed(*args, store=None, check=None):
    env = {**os.environ}
    if store is not None:
        env["CUMED_STORE"] = str(store)
    p = subprocess.run([sys.executable, "-c", "from cumed.cli import main; main()", *args],
                       capture_output=True, text=True, env=env, timeout=300)
    if check is not None:
        assert p.returncode == check, (p.stdout, p.stderr)
    return p


def one_error_line(p) -> str:
    assert p.returncode == 1, (p.stdout, p.stderr)
    lines = [line for line in p.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


@pytest.fixture()
def store(tmp_path):
    st = Store(tmp_path / "store")
    st.publish("corpus", docs_table(30))
    st.publish("corpus", docs_table(31))
    return st


def test_list_show_verify_json(store):
    p = cumed("datasets", "list", "--json", store=store.root, check=0)
    refs = [d["ref"] for d in json.loads(p.stdout)["datasets"]]
    assert refs == ["corpus@1", "corpus@2"]
    m = json.loads(cumed("datasets", "show", "corpus", "--json", store=store.root, check=0).stdout)
    assert m["version"] == 2 and m["rows"] == 31
    v = json.loads(cumed("datasets", "verify", "corpus@1", "--json", store=store.root, check=0).stdout)
    assert v["ok"] is True
    d = json.loads(cumed("datasets", "diff", "corpus@1", "corpus@2", "--json", store=store.root, check=0).stdout)
    assert d["added"] == 1 and d["dropped"] == 0


def test_verify_failure_exits_1_naming_the_file(store):
    f = store.get("corpus@1").files()[0]
    f.write_bytes(f.read_bytes()[:-10] + b"0123456789")
    p = cumed("datasets", "verify", "corpus@1", store=store.root)
    line = one_error_line(p)
    assert "data/part-00000.parquet" in line


def test_export_jsonl_and_parquet(store, tmp_path):
    res = json.loads(cumed("datasets", "export", "corpus@2", "--format", "jsonl", "--out", str(tmp_path / "j"),
                           "--json", store=store.root, check=0).stdout)
    lines = open(res["files"][0], encoding="utf-8").read().splitlines()
    assert len(lines) == 31 and "患者" in lines[0]  # UTF-8, not \\u escapes
    res = json.loads(cumed("datasets", "export", "corpus@2", "--format", "parquet", "--out", str(tmp_path / "p"),
                           "--json", store=store.root, check=0).stdout)
    assert pq.read_table(res["files"][0]).num_rows == 31


@pytest.mark.parametrize(
    "args,needle",
    [
        (("datasets", "show", "corpus@9"), "versions: corpus@1, corpus@2"),
        (("datasets", "show", "nope"), "no dataset named 'nope'"),
        (("datasets", "show", "Bad/Name"), "bad dataset name"),
        (("datasets", "export", "corpus", "--format", "xls", "--out", "x"), "unknown export format 'xls'"),
    ],
)
def test_user_errors_are_one_line(store, args, needle):
    assert needle in one_error_line(cumed(*args, store=store.root))


def test_missing_store(tmp_path):
    line = one_error_line(cumed("datasets", "list", "--store", str(tmp_path / "absent")))
    assert "does not exist" in line


def test_truncated_manifest(store):
    m = store.root / "corpus" / "v2" / "manifest.json"
    m.write_text(m.read_text()[:50])
    line = one_error_line(cumed("datasets", "show", "corpus@2", store=store.root))
    assert "unreadable manifest" in line and "manifest.json" in line


def test_publish_schema_mismatch_via_cli(tmp_path):
    bad = docs_table(3).drop_columns(["source"])
    pq.write_table(bad, tmp_path / "bad.parquet")
    line = one_error_line(cumed("datasets", "publish", "mine", "--from", str(tmp_path / "bad.parquet"),
                                "--store", str(tmp_path / "s")))
    assert "column 'source' is missing" in line


def test_usage_error_is_one_line(store):
    line = one_error_line(cumed("datasets", "show", store=store.root))
    assert "Missing argument" in line
