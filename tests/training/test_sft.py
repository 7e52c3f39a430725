"""SFT: labels exactly on assistant tokens, and clear errors instead of silent zero loss."""

import pytest
import torch

from cumed.errors import CumedError
from training.packing import IGNORE
from training.fit import fit
from training.lm_objective import lm_loss
from training.model import build_model
from training.run_folder import Run
from training.sft import encode_conversation, sft_batches, tokenize_conversations, train_sft

from .conftest import tiny_cfg

DIALOGUE = [{"role": "system", "content": "你是泌尿科医生。"},
            {"role": "user", "content": "我尿频三天了。"},
            {"role": "assistant", "content": "建议做尿常规。"},
            {"role": "user", "content": "<|qa_boundary|>需要吃药吗？"},
            {"role": "assistant", "content": "先检查再用药。"}]


def expected(tok, messages):
    """Independent reconstruction: special tokens are split out before BPE, so each piece encodes alone."""
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    ids, labels = [tok.bos_token_id], [IGNORE]
    for m in messages:
        role = tok.convert_tokens_to_ids(f"<|{m['role']}|>")
        body = enc(m["content"])
        if m["role"] == "assistant":
            ids += [role, *body, tok.eos_token_id]
            labels += [IGNORE, *body, tok.eos_token_id]
        else:
            end = tok.convert_tokens_to_ids("<|end|>")
            ids += [role, *body, end]
            labels += [IGNORE] * (len(body) + 2)
    return ids, labels


def test_labels_are_ignore_exactly_outside_assistant_tokens(toy_tokenizer):
    tok, _ = toy_tokenizer
    got = encode_conversation(tok, DIALOGUE, 512)
    ids, labels = expected(tok, DIALOGUE)
    assert got["input_ids"] == ids
    assert got["labels"] == labels
    trained = [t for t in got["labels"] if t != IGNORE]
    assert tok.decode(trained) == "建议做尿常规。</s>先检查再用药。</s>"


def test_template_without_generation_markers_is_an_error(toy_tokenizer):
    tok, _ = toy_tokenizer
    plain = tok.chat_template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    old, tok.chat_template = tok.chat_template, plain
    try:
        with pytest.raises(CumedError, match="empty assistant mask.*no \\{% generation %\\} markers"):
            encode_conversation(tok, DIALOGUE, 512)
    finally:
        tok.chat_template = old


def test_truncation_that_drops_every_assistant_token_is_an_error(toy_tokenizer):
    tok, _ = toy_tokenizer
    long_user = [{"role": "user", "content": "尿频" * 200}, {"role": "assistant", "content": "建议就医。"}]
    with pytest.raises(CumedError, match="empty assistant mask.*truncation removed"):
        encode_conversation(tok, long_user, 64, truncation=True)


def test_no_chat_template_is_an_error(toy_tokenizer):
    tok, _ = toy_tokenizer
    old, tok.chat_template = tok.chat_template, None
    try:
        with pytest.raises(CumedError, match="tokenizer has no chat template"):
            encode_conversation(tok, DIALOGUE, 512)
    finally:
        tok.chat_template = old


def test_longer_than_block_without_truncation_is_an_error(toy_tokenizer):
    tok, _ = toy_tokenizer
    with pytest.raises(CumedError, match=r"longer than the block \(16\) \(row r1\) with truncation off"):
        encode_conversation(tok, DIALOGUE, 16, row_id="r1")


def test_batch_with_no_trained_token_is_an_error(toy_tokenizer, tmp_path):
    tok, _ = toy_tokenizer
    cfg = tiny_cfg("sft", lr=1e-3)
    s = encode_conversation(tok, DIALOGUE, 512)
    s["labels"] = [IGNORE] * len(s["labels"])
    batches = sft_batches([s], tok, cfg)
    run = Run.start("sft", cfg, {}, tmp_path)
    with pytest.raises(CumedError, match="no trained items"):
        fit(run, build_model(cfg, tok), batches, lm_loss, cfg, max_steps=1)


def test_sft_overfits_a_tiny_batch(toy_store, toy_tokenizer, tmp_path):
    st, refs = toy_store
    tok, _ = toy_tokenizer
    cfg = tiny_cfg("sft", lr=3e-3, micro_batch_size=1, batch_size=1, max_steps=30)
    samples, _ = tokenize_conversations(st.get(refs["sft"]), tok, "train", 256, False, tmp_path / "cache")
    batches = sft_batches(samples[:6], tok, cfg)[:1]
    run = Run.start("sft", cfg, {}, tmp_path)
    fit(run, build_model(cfg, tok), batches, lm_loss, cfg, max_steps=30)
    losses = [m["loss"] for m in run.metrics() if "loss" in m]
    assert losses[-1] < 0.3 * losses[0]


def test_train_sft_writes_a_run(toy_store, toy_tokenizer, tmp_path):
    st, refs = toy_store
    _, tok_path = toy_tokenizer
    res = train_sft(st, refs["sft"], max_steps=2, runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache",
                    tokenizer=str(tok_path), block_size=256, micro_batch_size=2, batch_size=2)
    run = tmp_path / "runs" / res["run"].split("/")[-1]
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "datasets.json", "metrics.jsonl", "checkpoints", "final"}
    assert res["steps"] == 2 and "validation_loss" in res["eval"]
    assert (run / "final" / "tokenizer.json").is_file()
    assert torch.isfinite(torch.tensor(res["last"]["loss"]))
