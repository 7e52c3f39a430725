"""Preference exports: trl-reward (one real trl.RewardTrainer step) and llamafactory-rm (format only:
LLaMA-Factory itself is not installed here)."""

from __future__ import annotations

import json
import math

import pytest

from annotation.ranking.pairs import build_pairs
import training.exports  # noqa: F401 - registers the engines' formats, as the CLI does
from cumed.exports import export
from cumed.store import Store
from tests.annotation.test_ranking import candidates_table


@pytest.fixture()
def prefs(tmp_path):
    st = Store(tmp_path / "s")
    table, _ = build_pairs(candidates_table(40), cluster_threshold=None)
    return st.publish("cumed-rm", table, kind="preferences")


def test_llamafactory_rm_format(prefs, tmp_path):
    res = export(prefs, "llamafactory-rm", tmp_path / "lf")
    info = json.loads((tmp_path / "lf" / "dataset_info.json").read_text(encoding="utf-8"))
    entry = info["cumed-rm_train"]
    assert entry["ranking"] is True and entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "messages", "chosen": "chosen", "rejected": "rejected"}
    rows = json.loads((tmp_path / "lf" / entry["file_name"]).read_text(encoding="utf-8"))
    r = rows[0]
    assert r["messages"][0]["role"] == entry["tags"]["user_tag"]
    assert r["chosen"]["role"] == r["rejected"]["role"] == entry["tags"]["assistant_tag"]
    assert res["rows"] == prefs.rows


def test_trl_reward_trainer_one_step(prefs, tmp_path):
    import torch
    import trl
    import datasets
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    res = export(prefs, "trl-reward", tmp_path / "out")
    dd = datasets.load_from_disk(res["files"][0])
    assert set(dd["train"].column_names) >= {"prompt", "chosen", "rejected", "margin"}
    texts = [r[c] for r in dd["train"] for c in ("prompt", "chosen", "rejected")]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]", "</s>"]))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="</s>")
    cfg = LlamaConfig(vocab_size=hf_tok.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256, num_labels=1,
                      pad_token_id=hf_tok.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(cfg)
    args = trl.RewardConfig(output_dir=str(tmp_path / "rm"), max_steps=1, per_device_train_batch_size=4,
                            report_to=[], save_strategy="no", logging_steps=1, use_cpu=True, max_length=256,
                            dataset_num_proc=None)
    trainer = trl.RewardTrainer(model=model, args=args, train_dataset=dd["train"], processing_class=hf_tok)
    before = [p.detach().clone() for p in model.parameters()]
    out = trainer.train()
    assert out.global_step == 1 and math.isfinite(out.training_loss)  # not NaN, not infinite
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters()))
