"""Rejection sampling keeps exactly the top-scored responses and records where they came from."""

import pytest

from training.model import build_model
from training.rejection import checkpoint_sha256, sample_and_publish, select_top
from training.reward_scoring import score
from training.run_folder import Run

from .conftest import tiny_cfg


def test_select_top_keeps_the_best_per_prompt_with_a_floor():
    c = [{"prompt_id": "a", "sample": i, "score": s} for i, s in enumerate([0.1, 0.9, 0.5, 0.9])]
    c += [{"prompt_id": "b", "sample": i, "score": s} for i, s in enumerate([-1.0, -0.2])]
    kept, removed = select_top(c, top_k=2)
    assert [(k["prompt_id"], k["sample"]) for k in kept] == [("a", 1), ("a", 3), ("b", 1), ("b", 0)]
    assert len(removed) == 2 and all("not in top 2" in r["reason"] for r in removed)
    kept, removed = select_top(c, top_k=2, min_score=0.0)
    assert [(k["prompt_id"], k["sample"]) for k in kept] == [("a", 1), ("a", 3)]
    assert sum("below min_score" in r["reason"] for r in removed) == 2


@pytest.fixture(scope="module")
def checkpoints(toy_tokenizer, tmp_path_factory):
    tok, _ = toy_tokenizer
    root = tmp_path_factory.mktemp("ckpt")
    cfg = tiny_cfg("sft")
    policy = Run.start("sft", cfg, {}, root).save_final(build_model(cfg, tok), tok)
    reward = Run.start("rm", cfg, {}, root).save_final(build_model({**cfg, "seed": 7}, tok, head="reward"), tok)
    return policy, reward


def test_publishes_exactly_the_top_scored_responses(toy_store, toy_tokenizer, checkpoints):
    from transformers import AutoModelForSequenceClassification

    st, refs = toy_store
    tok, _ = toy_tokenizer
    policy, reward = checkpoints
    cfg = tiny_cfg("rs", n_prompts=5, samples_per_prompt=4, top_k=2, max_new_tokens=12, generate_batch_size=3,
                   publish_name="toy-rs")
    pub = sample_and_publish(st, refs["sft"], policy, reward, cfg)
    assert len(pub["candidates"]) == 5 * 4
    # rescore independently and recompute the top 2 per prompt
    rm = AutoModelForSequenceClassification.from_pretrained(str(reward), num_labels=1)
    dv = st.get(pub["ref"])
    rows = dv.to_arrow().to_pylist()
    prompts = {}
    for c in pub["candidates"]:
        prompts.setdefault(c["prompt_id"], []).append(c)
    want = set()
    for pid, cands in prompts.items():
        prompt_text = next(r for r in st.get(refs["sft"]).to_arrow().to_pylist() if r["id"] == pid)["messages"]
        user = [m for m in prompt_text if m["role"] == "user"][-1]["content"]
        scores = score(rm, tok, user, [c["response"] for c in cands], 512)
        assert scores == pytest.approx([c["score"] for c in cands], abs=1e-5)
        best = sorted(range(len(cands)), key=lambda i: (-scores[i], i))[:2]
        want |= {(pid, cands[i]["sample"]) for i in best}
    assert {(r["prompt_id"], r["sample"]) for r in rows} == want
    assert all(r["messages"][-1]["role"] == "assistant" and r["split"] == "train" for r in rows)
    assert dv.rows + dv.removed_rows == 20
    lin = dv.manifest["lineage"]
    assert lin["parents"] == [refs["sft"]]
    assert lin["checkpoints"]["policy"]["sha256"] == checkpoint_sha256(policy)
    assert lin["checkpoints"]["reward"]["sha256"] == checkpoint_sha256(reward)
    assert checkpoint_sha256(policy) != checkpoint_sha256(reward)


def test_rs_preset_overfits_a_tiny_batch(toy_store, toy_tokenizer, tmp_path):
    """The rs optimiser as printed (betas 0.9/0.98, eps 1e-2, wd 0.2) still fits one batch (lr raised for 30 steps)."""
    from training.fit import fit
    from training.lm_objective import lm_loss
    from training.sft import sft_batches, tokenize_conversations

    st, refs = toy_store
    tok, _ = toy_tokenizer
    cfg = tiny_cfg("rs", lr=3e-2, micro_batch_size=1, batch_size=1, max_steps=30)
    assert cfg["eps"] == 1e-2 and cfg["betas"] == [0.9, 0.98] and cfg["weight_decay"] == 0.2
    samples, _ = tokenize_conversations(st.get(refs["sft"]), tok, "train", 256, False, tmp_path)
    run = Run.start("rs", cfg, {}, tmp_path)
    fit(run, build_model(cfg, tok), sft_batches(samples[:6], tok, cfg)[:1], lm_loss, cfg)
    losses = [m["loss"] for m in run.metrics()]
    assert losses[-1] < 0.5 * losses[0], losses[::10]
