"""The megatron exporter (.bin/.idx read back) and the ``cumed train`` commands."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.training.conftest import run_cli
from cumed.errors import CumedError
import training.exports  # noqa: F401 - registers the engines' formats, as the CLI does
from cumed.exports import export

REPO = Path(__file__).resolve().parents[2]
CUMED = Path(sys.executable).with_name("cumed")  # the installed console script, as a user runs it


def read_megatron(prefix):
    """Reader for Megatron-LM's indexed dataset, written from the documented layout (MMIDIDX v1):
    header, version u64, dtype code u8, sequence count u64, document count u64, int32 lengths,
    int64 byte pointers, int64 document indices; the .bin holds the tokens back to back."""
    raw = open(f"{prefix}.idx", "rb").read()
    assert raw[:9] == b"MMIDIDX\x00\x00"
    version, = struct.unpack("<Q", raw[9:17])
    code = raw[17]
    n_seq, n_doc = struct.unpack("<QQ", raw[18:34])
    dtype = {4: np.int32, 8: np.uint16}[code]
    off = 34
    lengths = np.frombuffer(raw, np.int32, n_seq, off)
    off += 4 * n_seq
    pointers = np.frombuffer(raw, np.int64, n_seq, off)
    off += 8 * n_seq
    docs = np.frombuffer(raw, np.int64, n_doc, off)
    assert off + 8 * n_doc == len(raw) and version == 1
    data = open(f"{prefix}.bin", "rb").read()
    return [np.frombuffer(data, dtype, int(n), int(p)).tolist() for n, p in zip(lengths, pointers)], docs.tolist()


def test_megatron_export_round_trips(toy_store, toy_tokenizer, tmp_path, monkeypatch):
    st, refs = toy_store
    tok, tok_path = toy_tokenizer
    monkeypatch.setenv("CUMED_MEGATRON_TOKENIZER", str(tok_path))
    res = export(st.get(refs["docs"]), "megatron", tmp_path)
    seqs, doc_index = read_megatron(res["data_path"])
    texts = st.get(refs["docs"]).to_arrow(columns=["text"]).column("text").to_pylist()
    assert len(seqs) == len(texts) == 40 and doc_index == list(range(41))
    for s, t in zip(seqs, texts):
        assert s == tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    # The real consumer: megatron-core's reader (installed by the `training` extra).
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    ds = IndexedDataset(res["data_path"])
    assert len(ds) == 40 and [ds[i].tolist() for i in range(40)] == seqs


def test_megatron_export_without_tokenizer_says_how(toy_store, tmp_path, monkeypatch):
    st, refs = toy_store
    monkeypatch.delenv("CUMED_MEGATRON_TOKENIZER", raising=False)
    with pytest.raises(Exception, match="needs a local tokenizer.json"):
        export(st.get(refs["docs"]), "megatron", tmp_path)


def test_cli_megatron_export_takes_the_tokenizer_option(toy_store, toy_tokenizer, tmp_path):
    st, refs = toy_store
    tok, tok_path = toy_tokenizer
    env = {k: v for k, v in os.environ.items() if k != "CUMED_MEGATRON_TOKENIZER"}  # the option alone must do
    proc = subprocess.run([str(CUMED), "datasets", "export", refs["docs"], "--format", "megatron", "--tokenizer",
                           str(tok_path), "--out", str(tmp_path / "out"), "--store", str(st.root), "--json"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout)
    assert res["tokenizer"] == str(tok_path / "tokenizer.json")
    assert all(Path(f).is_file() and Path(f).stat().st_size > 0 for f in res["files"])
    assert sorted(Path(f).suffix for f in res["files"]) == [".bin", ".idx"]
    seqs, _ = read_megatron(res["data_path"])
    first = st.get(refs["docs"]).to_arrow(columns=["text"]).column("text")[0].as_py()
    assert len(seqs) == 40 and seqs[0] == tok(first, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]


def test_tokenizer_for_a_format_without_one_is_an_error(toy_store, tmp_path):
    st, refs = toy_store
    with pytest.raises(CumedError, match="jsonl export takes no tokenizer"):
        export(st.get(refs["docs"]), "jsonl", tmp_path / "out", tokenizer=str(tmp_path))
    assert not (tmp_path / "out").exists()



def test_cli_tokenizer_and_pretrain_json(toy_store, tmp_path, capsys, monkeypatch):
    st, refs = toy_store
    monkeypatch.setenv("CUMED_CACHE", str(tmp_path / "cache"))
    code, out, _ = run_cli(["train", "tokenizer", "--dataset", refs["sft"], "--vocab-size", "400", "--out",
                            str(tmp_path / "tok"), "--store", str(st.root), "--json"], capsys)
    assert code == 0 and json.loads(out)["vocab_size"] == 400
    (tmp_path / "small.yaml").write_text("block_size: 64\nbatch_size: 2\nmicro_batch_size: 2\n")
    code, out, _ = run_cli(["train", "pretrain", "--dataset", refs["docs"], "--max-steps", "2", "--config",
                            str(tmp_path / "small.yaml"), "--tokenizer", str(tmp_path / "tok"),
                            "--runs-dir", str(tmp_path / "runs"), "--store", str(st.root),
                            "--json"], capsys)
    res = json.loads(out)
    assert code == 0 and res["steps"] == 2 and res["dataset"] == refs["docs"]


def test_cli_wrong_kind_is_one_line(toy_store, capsys):
    st, refs = toy_store
    code, _, err = run_cli(["train", "rm", "--dataset", refs["sft"], "--store", str(st.root)], capsys)
    assert code == 1 and err.startswith("error: dataset of the wrong kind for the stage") and err.count("\n") == 1


def test_demo_training_runs_every_stage(toy_store, tmp_path):
    from training.demo import demo_training

    st, refs = toy_store
    res = demo_training(st, refs["docs"], refs["sft"], refs["pref"], steps=2, runs_dir=tmp_path, vocab_size=400,
                        max_documents=20)
    for stage in ("pretrain", "sft", "rm", "rs"):
        assert res[stage]["steps"] == 2 and res[stage]["last_loss"] is not None, stage
    assert res["rs"]["published"].startswith("toy-sft-rs@")
