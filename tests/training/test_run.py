"""Runs: seeded runs are identical, a killed run resumes to the same weights, DDP over gloo works."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from training.config import load_config
from training.fit import fit
from training.lm_objective import lm_loss
from training.pretrain import train_pretrain
from training.run_folder import Run
from training.schedule import lr_lambda, warmup_steps

from . import _ddp
from .conftest import tiny_cfg

REPO = Path(__file__).resolve().parents[2]


def weights(run_dir):
    return load_file(str(Path(run_dir) / "final" / "model.safetensors"))


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_schedule_presets():
    cfg = load_config("rm")
    assert warmup_steps(cfg, 100) == 5 and warmup_steps(cfg, 1000) == 30  # 3 %, at least 5
    f = lr_lambda("cosine", 5, 100, 0.1)
    assert f(0) == 0.2 and f(4) == 1.0 and abs(f(100) - 0.1) < 1e-9


def test_seeded_runs_match_and_kill_resume_gives_the_same_weights(toy_store, toy_tokenizer, tmp_path):
    st, refs = toy_store
    _, tok = toy_tokenizer
    kw = {"tokenizer": str(tok), "block_size": 64, "micro_batch_size": 2, "batch_size": 2, "checkpoint_every": 1,
          "dropout": 0.1, "lr": 1e-3, "max_steps": 6, "cache_dir": str(tmp_path / "cache")}
    a = train_pretrain(st, refs["docs"], runs_dir=tmp_path / "a", **kw)
    b = train_pretrain(st, refs["docs"], runs_dir=tmp_path / "b", **kw)
    assert same(weights(a["run"]), weights(b["run"]))

    # a real kill: SIGKILL right after the step-3 checkpoint, in a separate process
    code = ("import sys, json; from cumed.store import Store; from training.pretrain import train_pretrain; "
            f"kw = json.loads(sys.argv[1]); train_pretrain(Store({str(st.root)!r}), {refs['docs']!r}, "
            f"runs_dir={str(tmp_path / 'c')!r}, **kw)")
    env = {**os.environ, "CUMED_TRAIN_KILL_AT": "3"}
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(kw)], cwd=REPO, env=env, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    (run_dir,) = (tmp_path / "c").iterdir()
    assert not (run_dir / "final").exists()
    assert Run(run_dir).checkpoints()[-1].parent.name == "step-0000003"
    c = train_pretrain(st, refs["docs"], resume=run_dir, cache_dir=kw["cache_dir"])
    assert c["resumed_from"] == 3 and c["steps"] == 6
    assert same(weights(a["run"]), weights(c["run"]))
    steps = [m["step"] for m in Run(run_dir).metrics() if "loss" in m]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_pretrain_overfits_a_tiny_batch(toy_store, toy_tokenizer, tmp_path):
    st, refs = toy_store
    _, tok = toy_tokenizer
    cfg = tiny_cfg("pretrain", block_size=64, micro_batch_size=2, batch_size=2, lr=3e-3, dropout=0.0, max_steps=30,
                   tokenizer=str(tok))
    batches, model = _ddp.batches_and_model(str(st.root), refs["docs"], str(tok), cfg, tmp_path / "cache")
    run = Run.start("pre", cfg, {}, tmp_path)
    fit(run, model, batches[:1], lm_loss, cfg)
    losses = [m["loss"] for m in run.metrics()]
    assert losses[-1] < 0.3 * losses[0]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_gloo_match_one_process(toy_store, toy_tokenizer, tmp_path):
    """2 ranks x 1 micro-batch per step == 1 process x 2 accumulated micro-batches (same items, same weights)."""
    st, refs = toy_store
    _, tok = toy_tokenizer
    cfg = tiny_cfg("pretrain", block_size=64, micro_batch_size=2, batch_size=4, lr=1e-3, dropout=0.0, max_steps=3,
                   tokenizer=str(tok))
    cache = tmp_path / "cache"
    batches, model = _ddp.batches_and_model(str(st.root), refs["docs"], str(tok), cfg, cache)  # also fills the cache
    single = fit(Run.start("one", cfg, {}, tmp_path / "one"), model, batches, lm_loss, cfg)
    out = tmp_path / "ddp.pt"
    torch.multiprocessing.spawn(_ddp.worker, nprocs=2, join=True, args=(
        2, _free_port(), str(st.root), refs["docs"], str(tok), cfg, str(tmp_path / "ddp"), str(cache), str(out)))
    r0, r1 = (torch.load(f"{out}.rank{r}", weights_only=False) for r in (0, 1))
    assert same(r0["state"], r1["state"])  # DDP kept the replicas in sync
    for k, v in model.state_dict().items():
        assert torch.allclose(v, r0["state"][k], atol=1e-5), k
    assert abs(r0["last"]["loss"] - single["last"]["loss"]) < 1e-5
    assert r0["last"]["items"] == single["last"]["items"]
    (ddp_run,) = (tmp_path / "ddp").iterdir()
    assert len(Run(ddp_run).metrics()) == 3  # only rank 0 writes metrics
