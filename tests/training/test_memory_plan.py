"""The memory plan: exact parameter counts, the 13B verdicts, an estimate that matches a measured peak,
and a stage that refuses a setting that cannot fit before any weight exists."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cumed.errors import CumedError
from training import memory_plan as mp

from .conftest import tiny_cfg

REPO = Path(__file__).resolve().parents[2]
CUMED = Path(sys.executable).with_name("cumed")  # the installed console script, as a user runs it


@pytest.mark.parametrize("kw", [
    {},                                                   # MHA, untied
    {"num_key_value_heads": 2},                           # GQA
    {"num_key_value_heads": 2, "tie_word_embeddings": True},
    {"attention_bias": True, "mlp_bias": True, "head_dim": 24},
])
def test_parameter_count_is_exact(kw, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    conf = LlamaConfig(vocab_size=301, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                       intermediate_size=176, num_labels=1, pad_token_id=0, **{"tie_word_embeddings": False, **kw})
    conf.save_pretrained(tmp_path)
    shape = mp.shape_from_config_json(tmp_path)  # the folder's config.json, as build_model reads it
    causal, reward = LlamaForCausalLM(conf), LlamaForSequenceClassification(conf)
    # tied weights are one tensor: count each parameter once
    assert mp.parameter_count(shape) == sum(p.numel() for p in causal.parameters())
    assert mp.parameter_count(shape, "reward") == sum(p.numel() for p in reward.parameters())


def test_published_shapes_give_the_published_sizes():
    # LLaMA-2 model cards: 6.74B, 13.0B, 69.0B parameters
    assert mp.parameter_count(mp.SIZES["7b"]) == 6_738_415_616
    assert mp.parameter_count(mp.SIZES["13b"]) == 13_015_864_320
    assert round(mp.parameter_count(mp.SIZES["70b"]) / 1e9, 1) == 69.0


def _plan_cli(*args) -> dict:
    proc = subprocess.run([str(CUMED), "train", "plan", *args, "--json"], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_13b_on_8x80gb_refuses_ddp_and_accepts_fsdp_with_checkpointing():
    res = _plan_cli("--model", "13b", "--gpus", "8", "--gpu-memory", "80")
    est = {e["setting"]: e for e in res["estimates"]}
    ddp = est["ddp"]
    assert not ddp["fits"] and ddp["total"] > 80
    # a full replica per GPU: 13.0B x (4 fp32 weights + 4 grads + 8 AdamW moments) bytes, each over 80 GiB together
    assert ddp["params"] + ddp["grads"] + ddp["optimizer"] == pytest.approx(13_015_864_320 * 16 / 2 ** 30, rel=1e-6)
    assert not est["ddp+AC"]["fits"]
    assert est["fsdp+AC"]["fits"] and est["fsdp+AC"]["total"] < 72
    assert res["recommended"].startswith("fsdp")

    # the paper's context length: 4 rows of 4096 tokens need checkpointing even when sharded
    long = _plan_cli("--model", "ziya-13b", "--gpus", "8", "--gpu-memory", "80", "--seq-len", "4096", "--micro-batch", "4")
    est = {e["setting"]: e for e in long["estimates"]}
    assert not est["ddp"]["fits"] and not est["fsdp"]["fits"] and est["fsdp+AC"]["fits"]
    assert long["recommended"] == "fsdp+AC"
    assert "activation_checkpointing: true" in long["recommended_config"]


MEASURE = textwrap.dedent("""
    import json, sys
    import torch
    torch.set_num_threads(1)
    from transformers import LlamaConfig, LlamaForCausalLM
    from training.lm_objective import lm_loss

    V, h, L, a, kv, i, rows, seq = json.loads(sys.argv[1])
    torch.manual_seed(0)
    ids = torch.randint(0, V, (rows, seq))
    batch = {"input_ids": ids, "labels": ids.clone(), "position_ids": torch.arange(seq).repeat(rows, 1)}
    base = int(open("/proc/self/statm").read().split()[1]) * 4096  # resident bytes now, before the model
    conf = LlamaConfig(vocab_size=V, hidden_size=h, num_hidden_layers=L, num_attention_heads=a, num_key_value_heads=kv,
                       intermediate_size=i, tie_word_embeddings=False)
    conf._attn_implementation = "sdpa"
    model = LlamaForCausalLM(conf)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for _ in range(3):  # the second and third steps run with the AdamW moments already allocated
        loss, _ = lm_loss(model, batch)
        (loss / (rows * seq)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across fork+exec, so a child of a big pytest
    # process would start with the parent's peak; VmHWM belongs to this process's own memory map.
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    peak = int(hwm.split()[1]) * 1024  # kB
    print(json.dumps({"increase": peak - base}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (VmHWM)")
def test_estimate_is_within_30_percent_of_the_measured_cpu_peak():
    # ~33M parameters, so weights + gradients + AdamW (16 B each, ~540 MB) dominate Python's baseline
    dims = [8000, 512, 8, 8, 8, 1376, 4, 128]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(dims)], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    measured = json.loads(proc.stdout.strip().splitlines()[-1])["increase"]
    V, h, L, a, kv, i, rows, seq = dims
    shape = mp.Shape("measured", V, h, L, a, kv, i)
    est = mp.estimate(shape, mp.Setting("ddp"), world=1, seq=seq, rows=rows, gpu_memory_gb=1e6, device="cpu").total * mp.GIB
    assert abs(est - measured) <= 0.3 * measured, (f"estimated {est / 2**20:.0f} MiB, measured peak RSS increase "
                                                   f"{measured / 2**20:.0f} MiB ({est / measured - 1:+.0%})")


def _weights(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.suffix in (".pt", ".safetensors", ".bin")]


def test_a_stage_refuses_a_setting_that_cannot_fit_before_any_weight(toy_store, toy_tokenizer, tmp_path):
    from training.sft import train_sft

    st, refs = toy_store
    tok, tok_path = toy_tokenizer
    kw = {"tokenizer": str(tok_path), "block_size": 256, "micro_batch_size": 2, "batch_size": 2, "gpus": 8}
    # a GPU budget between what DDP needs and what FSDP + checkpointing needs: the error names the fix
    p = mp.plan(mp.shape_from_cfg(tiny_cfg("sft"), len(tok)), world=8, gpu_memory_gb=1e6, seq=256, rows=2,
                attn="sdpa", precision="bf16")
    budget = (p.get("ddp").total + p.get("fsdp+AC").total) / 2 / mp.HEADROOM
    runs = tmp_path / "runs"
    with pytest.raises(CumedError) as e:
        train_sft(st, refs["sft"], max_steps=1, runs_dir=runs, cache_dir=tmp_path / "cache", gpu_memory_gb=budget, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"under ddp on 8 GPUs needs {p.get('ddp').total:.1f} GiB per GPU (params " in msg
    assert "set parallelism: fsdp" in msg and "cumed train plan" in msg
    # the check runs before the run folder is made (open_run) and again before any weight (build_model)
    assert not runs.exists() or not any(runs.iterdir())

    # nothing fits at all: one line saying so
    with pytest.raises(CumedError, match="no setting fits .*smaller block_size"):
        train_sft(st, refs["sft"], max_steps=1, runs_dir=runs, cache_dir=tmp_path / "cache", gpu_memory_gb=0.001, **kw)
    assert not runs.exists() or not any(runs.iterdir())


def test_the_cli_stage_stops_with_one_line(toy_store, toy_tokenizer, tmp_path):
    st, refs = toy_store
    _, tok_path = toy_tokenizer
    conf = tmp_path / "c.yaml"
    conf.write_text("gpu_memory_gb: 0.001\nblock_size: 256\nmicro_batch_size: 2\nbatch_size: 2\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUMED_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([str(CUMED), "train", "sft", "--dataset", refs["sft"], "--store", str(st.root), "--config",
                           str(conf), "--tokenizer", str(tok_path), "--runs-dir", str(tmp_path / "runs"), "--max-steps", "1"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: tiny (") and "GiB per GPU" in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists()


def test_cpu_run_checks_against_host_ram():
    cfg = tiny_cfg("sft")
    p = mp.check_fits(cfg, 400, None, 1)
    assert p is None or (p.device == "cpu" and p.precision == "fp32" and p.get("ddp").overhead == 0 and p.get("ddp").fits)
    # the config's own setting is what is checked: an unknown parallelism is an error, not DDP
    with pytest.raises(CumedError, match="parallelism: zero3"):
        mp.check_fits({**cfg, "parallelism": "zero3"}, 400, None, 1)
