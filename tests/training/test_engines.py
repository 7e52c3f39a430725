"""The engines teams already use, run by cumed on its versions (``training/engines``).

LLaMA-Factory trains a tiny LLaMA for a few steps on CPU from ``.venv-llamafactory`` (``make
llamafactory``; missing it fails, as in test_llamafactory.py) through ``cumed train sft|rm
--engine llamafactory``; the checkpoint's lineage must name the version's content hash. Megatron-LM
itself is not installed (it needs GPUs): its run is prepared, and megatron-core's ``GPTDataset``
over the export must yield exactly the version's tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.training.conftest import run_cli
from tests.training.test_llamafactory import lf_python

TINY = {"tokenizer_vocab_size": 400, "tiny_hidden_size": 32, "tiny_layers": 1, "tiny_heads": 2, "tiny_kv_heads": 2,
        "tiny_intermediate_size": 64, "block_size": 256, "batch_size": 4, "micro_batch_size": 4}



@pytest.fixture
def lf_env(tmp_path, monkeypatch):
    lf_python()  # fails with the `make llamafactory` line when the venv is missing
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # LLaMA-Factory's dataset cache stays in tmp


def tiny_config(path: Path, **kw) -> Path:
    path.write_text(yaml.safe_dump({**TINY, **kw}), encoding="utf-8")
    return path


def test_cli_sft_with_llamafactory_records_the_version(toy_store, lf_env, tmp_path, capsys):
    st, refs = toy_store
    dv = st.get(refs["sft"])
    code, out, err = run_cli(["train", "sft", "--dataset", refs["sft"], "--engine", "llamafactory", "--max-steps", "3",
                              "--config", str(tiny_config(tmp_path / "tiny.yaml")), "--runs-dir", str(tmp_path / "runs"),
                              "--store", str(st.root), "--json"], capsys)
    assert code == 0, err[-3000:]
    res = json.loads(out)
    final = Path(res["final"])
    assert res["engine"] == "llamafactory" and res["llamafactory_version"] == "0.9.5"
    # LLaMA-Factory trained: its weights, its trainer state with the three steps and a loss each
    assert (final / "model.safetensors").stat().st_size > 0 and (final / "tokenizer.json").is_file()
    state = json.loads((final / "trainer_state.json").read_text())
    assert state["global_step"] == 3 == res["steps"]
    assert [r["step"] for r in state["log_history"] if "loss" in r] == [1, 2, 3]
    assert "eval_loss" in res["eval"]  # the preset's eval_split (validation), evaluated by LLaMA-Factory
    # from the preset, in LLaMA-Factory's names, on the exported version
    lf = yaml.safe_load(Path(res["llamafactory_yaml"]).read_text())
    assert lf["stage"] == "sft" and lf["finetuning_type"] == "full" and lf["dataset"] == "toy-sft_train"
    assert lf["eval_dataset"] == "toy-sft_validation" and lf["cutoff_len"] == 256 and lf["max_steps"] == 3
    assert lf["learning_rate"] == 2e-5 and lf["weight_decay"] == 0.1 and lf["lr_scheduler_type"] == "cosine"
    assert lf["per_device_train_batch_size"] == 4 and lf["gradient_accumulation_steps"] == 1
    assert lf["neat_packing"] is True and lf["bf16"] is False and "template" not in lf
    info = json.loads((Path(lf["dataset_dir"]) / "dataset_info.json").read_text())
    rows = json.loads((Path(lf["dataset_dir"]) / info["toy-sft_train"]["file_name"]).read_text())
    assert len(rows) == 27 and rows[0]["id"] == "conv-000"  # the version's train split (3 of 30 are validation)
    # the lineage names the version by content hash, and LLaMA-Factory as the engine
    lineage = json.loads((final / "lineage.json").read_text())
    assert lineage["engine"] == "llamafactory" and lineage["stage"] == "sft"
    assert lineage["datasets"]["train"]["ref"] == dv.ref
    assert lineage["datasets"]["train"]["content_hash"] == dv.content_hash == res["content_hash"]
    assert lineage["config"] == lf and lineage["llamafactory_version"] == "0.9.5"
    assert lineage["parent"] is None and lineage["tokenizer"]["sha256"]  # tiny LLaMA from scratch, cumed's tokenizer


def test_rm_with_llamafactory(toy_store, lf_env, tmp_path):
    from training.engines.llamafactory import train_with_llamafactory

    st, refs = toy_store
    res = train_with_llamafactory(st, refs["pref"], "rm", tiny_config(tmp_path / "tiny.yaml"), 2, tmp_path / "runs",
                                  lf_args={"save_strategy": "no"})
    final = Path(res["final"])
    assert res["steps"] == 2 and (final / "value_head.safetensors").is_file()
    assert {"eval_toy-pref_validation_accuracy", "eval_toy-pref_test_accuracy"} <= set(res["eval"])
    lf = yaml.safe_load(Path(res["llamafactory_yaml"]).read_text())
    # the RM preset: cosine to 10 % of 5e-6, at least 5 warm-up steps (capped at the 2 run)
    assert lf["lr_scheduler_type"] == "cosine_with_min_lr" and lf["lr_scheduler_kwargs"] == {"min_lr_rate": 0.1}
    assert lf["warmup_steps"] == 2 and lf["save_strategy"] == "no" and not list(final.glob("checkpoint-*"))
    lineage = json.loads((final / "lineage.json").read_text())
    assert lineage["engine"] == "llamafactory" and lineage["stage"] == "rm"
    assert lineage["datasets"]["train"]["content_hash"] == st.get(refs["pref"]).content_hash


def test_engine_errors_are_one_line(toy_store, capsys):
    st, refs = toy_store
    code, _, err = run_cli(["train", "sft", "--dataset", refs["sft"], "--engine", "megatron", "--store", str(st.root)],
                           capsys)
    assert code == 1 and err == "error: unknown engine 'megatron' for cumed train sft; use one of cumed, llamafactory\n"
    code, _, err = run_cli(["train", "rm", "--dataset", refs["pref"], "--llamafactory-arg", "deepspeed=x.json",
                            "--store", str(st.root)], capsys)
    assert code == 1 and "add --engine llamafactory" in err and err.count("\n") == 1


def test_missing_llamafactory_venv_says_make(toy_store, tmp_path, monkeypatch):
    from cumed.errors import CumedError
    from training.engines.llamafactory import train_with_llamafactory

    st, refs = toy_store
    monkeypatch.setenv("CUMED_LF_VENV", str(tmp_path / "nowhere"))
    with pytest.raises(CumedError, match="make llamafactory"):
        train_with_llamafactory(st, refs["sft"], "sft", runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()  # nothing exported before the check


def test_cli_megatron_prepares_and_checks(toy_store, toy_tokenizer, tmp_path, capsys):
    from training.engines.megatron import gpt_dataset

    st, refs = toy_store
    tok, tok_path = toy_tokenizer
    dv = st.get(refs["docs"])
    code, out, err = run_cli(["train", "pretrain", "--dataset", refs["docs"], "--engine", "megatron", "--tokenizer",
                              str(tok_path), "--config", str(tiny_config(tmp_path / "tiny.yaml", block_size=64)),
                              "--megatron-arg", "tensor-model-parallel-size=2", "--runs-dir", str(tmp_path / "runs"),
                              "--store", str(st.root), "--json"], capsys)
    assert code == 0, err[-3000:]
    res = json.loads(out)
    run = Path(res["run"])
    args = json.loads((run / "megatron_args.json").read_text())
    prefix = res["data_path"]
    assert Path(prefix + ".bin").is_file() and Path(prefix + ".idx").is_file() and prefix.startswith(str(run / "data"))
    # the pretrain preset in Megatron-LM's names (--megatron-arg last)
    assert args["data-path"] == prefix and args["split"] == "100,0,0" and args["seq-length"] == 64
    assert args["micro-batch-size"] == 4 and args["global-batch-size"] == 4 and args["lr"] == 5e-5
    assert args["weight-decay"] == 0.01 and (args["adam-beta1"], args["adam-beta2"]) == (0.9, 0.95)
    assert args["clip-grad"] == 1.0 and args["bf16"] is True and args["lr-decay-style"] == "constant"
    assert args["tokenizer-type"] == "HuggingFaceTokenizer" and args["tokenizer-model"] == str(tok_path.resolve())
    assert (args["num-layers"], args["hidden-size"], args["num-attention-heads"], args["ffn-hidden-size"]) == (1, 32, 2, 64)
    assert "group-query-attention" not in args  # tiny_kv_heads == tiny_heads: plain multi-head attention
    assert args["tensor-model-parallel-size"] == 2 and args["reset-position-ids"] is True
    script = (run / "megatron_pretrain.sh").read_text()
    assert '"$MEGATRON_LM/pretrain_gpt.py"' in script and f"--data-path {prefix} \\" in script
    assert "--seq-length 64 \\" in script and "--swiglu \\" in script
    # megatron-core read the export back during the check
    assert res["check"]["documents"] == 40 and res["check"]["eod"] == tok.eos_token_id
    samples_per_epoch = (res["tokens"] - 1) // 64
    assert res["check"]["samples_per_epoch"] == samples_per_epoch and res["train_iters"] == -(-samples_per_epoch // 4)
    lineage = json.loads((run / "lineage.json").read_text())
    assert lineage["engine"] == "megatron" and lineage["prepared_only"] is True
    assert lineage["datasets"]["train"]["content_hash"] == dv.content_hash and lineage["config"] == args

    # GPTDataset's samples are windows of the version's documents, tokenised independently, in its document order
    ds = gpt_dataset(prefix, tok_path, 64, 1234, tmp_path / "cache")
    samples = [ds[i] for i in range(len(ds))]
    texts = dv.to_arrow(columns=["text"]).column("text").to_pylist()
    encoded = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts]
    stream = [t for d in ds.document_index for t in encoded[d]]
    windows = sorted(stream[k * 64:k * 64 + 65] for k in range(len(ds)))
    got = sorted(s["tokens"].tolist() + s["labels"].tolist()[-1:] for s in samples)
    assert got == windows and len(got) == res["check"]["samples_per_epoch"]
    # positions restart after each </s> (--reset-position-ids): documents do not see each other
    s = next(s for s in samples if tok.eos_token_id in s["tokens"].tolist()[:-1])
    cut = s["tokens"].tolist().index(tok.eos_token_id) + 1
    assert s["position_ids"][cut].item() == 0


def test_megatron_split_without_documents_is_an_error(toy_store, toy_tokenizer, tmp_path):
    """megatron-core loops forever building a split that has weight but no document: refused first."""
    from cumed.errors import CumedError
    from training.engines.megatron import prepare_megatron_pretrain

    st, refs = toy_store
    _, tok_path = toy_tokenizer
    with pytest.raises(CumedError, match="none of the 40 documents"):
        prepare_megatron_pretrain(st, refs["docs"], None, tmp_path / "run", tok_path, block_size=64,
                                  megatron_overrides={"split": "969,30,1"})


def test_engine_overrides_read_as_yaml_but_no_stays_a_word():
    from training.engines import parse_overrides

    got = parse_overrides(["save_strategy=no", "bf16=true", "save_steps=50", "deepspeed=ds_z3.json"], "--llamafactory-arg")
    assert got == {"save_strategy": "no", "bf16": True, "save_steps": 50, "deepspeed": "ds_z3.json"}
