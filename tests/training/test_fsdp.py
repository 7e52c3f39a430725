"""FSDP2 (``parallelism: fsdp``) on CPU over gloo: the same training as one process, sharded checkpoints
that resume after a kill, a consolidated final folder that loads as a plain Hugging Face model.

Tolerance: losses and weights of different process counts agree within ``TOL`` = 1e-5 (float32
sums in another order: two ranks' gradient reduction vs one process's accumulation); a resumed
run and activation checkpointing are compared with the same bound, and a resume is in fact exact.
"""

import socket

import pytest
import torch
from safetensors.torch import load_file

from training.fit import fit
from training.lm_objective import lm_loss
from training.run_folder import Run

from . import _ddp, _fsdp
from .conftest import tiny_cfg

TOL = 1e-5


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(st, refs, tok, cache, jobs, out):
    torch.multiprocessing.spawn(_fsdp.worker, nprocs=2, join=True, args=(
        2, _free_port(), str(st.root), refs["docs"], str(tok), str(cache), jobs, str(out)))
    return {j["name"]: [torch.load(out / f"{j['name']}.rank{r}", weights_only=False) for r in (0, 1)] for j in jobs}


def _consolidated(ranks):
    """The whole parameters from each rank's dim-0 shard (FSDP2 shards every parameter on dim 0)."""
    return {k: torch.cat([r["shards"][k] for r in ranks]) for k in ranks[0]["shards"]}


def _close(a, b):
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=TOL, rtol=0) for k in a)


@pytest.fixture(scope="module")
def fsdp_runs(toy_store, toy_tokenizer, tmp_path_factory):
    """Two spawns of 2 ranks (a spawn is mostly imports: ~10 s each on 2 cores). The first is SIGKILLed
    after its step-2 checkpoint; the second runs three uninterrupted FSDP runs (plain, activation
    checkpointing, dropout) and then resumes the killed one."""
    st, refs = toy_store
    _, tok = toy_tokenizer
    tmp = tmp_path_factory.mktemp("fsdp")
    # 2 ranks x 2 accumulated micro-batches per step (1 process: 4); the clip (max_grad_norm 1) is active
    cfg = tiny_cfg("pretrain", block_size=64, micro_batch_size=2, batch_size=8, lr=1e-3, dropout=0.0, max_steps=4,
                   tiny_hidden_size=32, tiny_layers=2, tiny_intermediate_size=64, tokenizer=str(tok),
                   checkpoint_every=1, parallelism="fsdp")
    cache = tmp / "cache"
    batches, _ = _ddp.batches_and_model(str(st.root), refs["docs"], str(tok), cfg, cache)  # fills the cache
    out = tmp / "out"
    out.mkdir()
    # dropout on, so each rank's RNG state must come back from the checkpoint too
    with pytest.raises(torch.multiprocessing.ProcessExitedException) as exc:
        _spawn(st, refs, tok, cache, [{"name": "killed", "cfg": {**cfg, "dropout": 0.1}, "runs": str(tmp / "killed"),
                                       "kill_at": 2}], out)
    assert exc.value.signal_name == "SIGKILL", exc.value  # not a crash before the kill
    (killed,) = (tmp / "killed").iterdir()
    run = Run(killed)
    seen = {"final": (killed / "final").exists(), "checkpoints": run.checkpoints()}
    jobs = [{"name": "plain", "cfg": cfg, "runs": str(tmp / "plain")},
            {"name": "ac", "cfg": {**cfg, "activation_checkpointing": True}, "runs": str(tmp / "ac")},
            {"name": "dropout", "cfg": {**cfg, "dropout": 0.1}, "runs": str(tmp / "dropout")},
            {"name": "resumed", "resume": str(killed)}]
    return {"cfg": cfg, "batches": batches, "tmp": tmp, "killed": seen, "res": _spawn(st, refs, tok, cache, jobs, out)}


def test_fsdp_two_ranks_match_one_process(fsdp_runs, toy_tokenizer, tmp_path):
    """Per-step losses and final weights of 2 FSDP ranks == 1 process (plain loop, and FSDP alone), within TOL."""
    tok, _ = toy_tokenizer
    cfg, batches = fsdp_runs["cfg"], fsdp_runs["batches"]
    r0, r1 = fsdp_runs["res"]["plain"]
    two = r0["losses"]
    assert len(two) == 4 and r0["result"]["last"]["items"] > 0

    from training.model import build_model

    plain = build_model({**cfg, "parallelism": "ddp"}, tok)
    one = Run.start("one", {**cfg, "parallelism": "ddp"}, {}, tmp_path / "one")
    res = fit(one, plain, batches, lm_loss, {**cfg, "parallelism": "ddp"})
    losses_one = [m["loss"] for m in one.metrics()]
    assert res["last"]["items"] == r0["result"]["last"]["items"]
    assert all(abs(a - b) < TOL for a, b in zip(losses_one, two, strict=True)), (losses_one, two)
    assert _close(plain.state_dict(), _consolidated(fsdp_runs["res"]["plain"]))

    # FSDP in one process, no torchrun: a one-process group is made for it
    try:
        alone = build_model(cfg, tok)
        run = Run.start("alone", cfg, {}, tmp_path / "alone")
        fit(run, alone, batches, lm_loss, cfg)
        losses_alone = [m["loss"] for m in run.metrics()]
        assert all(abs(a - b) < TOL for a, b in zip(losses_alone, two, strict=True)), (losses_alone, two)
        final = load_file(str(run.save_final(alone, tok) / "model.safetensors"))
        assert _close(final, plain.state_dict())
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def test_fsdp_final_folder_loads_with_transformers(fsdp_runs):
    """save_final gathers the shards: rank 0's folder loads as a plain model holding the trained weights."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ranks = fsdp_runs["res"]["plain"]
    final = ranks[0]["final"]
    model = AutoModelForCausalLM.from_pretrained(final)
    AutoTokenizer.from_pretrained(final)
    trained = _consolidated(ranks)
    assert model.config.architectures == ["LlamaForCausalLM"]
    assert trained.keys() == model.state_dict().keys()
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())
    run = Run(ranks[0]["run"])
    ckpt = run.checkpoints()[-1]
    assert ckpt.name == ".metadata" and {"__0_0.distcp", "__1_0.distcp", "rank-00000.pt", "rank-00001.pt"} <= {
        p.name for p in ckpt.parent.iterdir()}  # sharded: every rank wrote its part
    assert len(run.checkpoints()) == 2  # keep_checkpoints


def test_fsdp_activation_checkpointing_same_losses(fsdp_runs):
    """Recomputing each layer in the backward (its shards gathered again) changes no loss and no weight."""
    plain, ac = fsdp_runs["res"]["plain"][0], fsdp_runs["res"]["ac"][0]
    assert ac["checkpointing"] and not plain["checkpointing"]
    assert all(abs(a - b) < TOL for a, b in zip(plain["losses"], ac["losses"], strict=True))
    assert _close(_consolidated(fsdp_runs["res"]["plain"]), _consolidated(fsdp_runs["res"]["ac"]))


def test_fsdp_killed_run_resumes_from_sharded_checkpoint(fsdp_runs):
    """2 ranks SIGKILLed after the step-2 checkpoint (dropout on); the resumed run runs steps 3-4 only
    and ends with the uninterrupted run's weights, exactly."""
    killed = fsdp_runs["killed"]
    assert not killed["final"]  # SIGKILLed (checked in the fixture) mid-run, before any final/
    assert [c.parent.name for c in killed["checkpoints"]] == ["step-0000001", "step-0000002"]
    assert killed["checkpoints"][-1].name == ".metadata"  # the sharded kind

    resumed, uninterrupted = fsdp_runs["res"]["resumed"], fsdp_runs["res"]["dropout"]
    assert resumed[0]["result"]["resumed_from"] == 2 and resumed[0]["result"]["steps"] == 4
    # metrics.jsonl: steps 1-2 logged by the killed processes, 3-4 by the resumed ones
    assert all(abs(a - b) < TOL for a, b in zip(resumed[0]["losses"], uninterrupted[0]["losses"], strict=True))
    assert _close(_consolidated(resumed), _consolidated(uninterrupted))
    a, b = (load_file(str(r[0]["final"]) + "/model.safetensors") for r in (resumed, uninterrupted))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # on CPU the resume is exact
