"""Exports of a conversations version: LLaMA-Factory files and a TRL dataset that SFTTrainer trains on."""

import hashlib
import json

import pytest

import training.exports  # noqa: F401 - registers the engines' formats (llamafactory, trl), as the CLI does
from cumed.exports import export


def test_llamafactory_export(default_build, tmp_path):
    dv, _ = default_build
    res = export(dv, "llamafactory", tmp_path)
    info = json.loads((tmp_path / "dataset_info.json").read_text(encoding="utf-8"))
    assert set(info) == {f"{dv.name}_train", f"{dv.name}_validation", f"{dv.name}_test"}
    total = 0
    for entry in info.values():
        assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "messages"}
        assert entry["tags"] == {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                                 "assistant_tag": "assistant", "system_tag": "system"}
        path = tmp_path / entry["file_name"]
        assert hashlib.sha1(path.read_bytes()).hexdigest() == entry["file_sha1"]
        data = json.loads(path.read_text(encoding="utf-8"))
        total += len(data)
        assert all(m["role"] in ("user", "assistant") for r in data for m in r["messages"])
    assert total == dv.rows == res["rows"]


def _tokenizer(texts):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")  # one piece per character
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=["<unk>", "<pad>", "<s>", "</s>"])
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>")
    fast.chat_template = (
        "{% for m in messages %}{{ '<s>' + m['role'] + '\n' + m['content'] + '</s>' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<s>assistant\n' }}{% endif %}"
    )
    return fast


def test_trl_export_trains_one_sft_step(default_build, tmp_path):
    pytest.importorskip("trl")
    import datasets
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    dv, _ = default_build
    export(dv, "trl", tmp_path)
    dd = datasets.load_from_disk(str(tmp_path / "trl"))
    assert set(dd) == {"train", "validation", "test"}
    assert sum(len(d) for d in dd.values()) == dv.rows
    train = dd["train"].select(range(8))
    assert train[0]["messages"][0]["role"] == "user"
    tok = _tokenizer(m["content"] for r in train for m in r["messages"])
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=4, intermediate_size=128, vocab_size=len(tok),
                                         max_position_embeddings=256, pad_token_id=tok.pad_token_id,
                                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=4, max_length=128,
                     report_to=[], use_cpu=True, save_strategy="no", logging_steps=1, dataset_num_proc=None)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tok)
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0
