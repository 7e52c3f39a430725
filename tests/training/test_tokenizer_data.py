"""Tokenizer training, dataset loading (kind and split errors) and the tokenisation cache."""

import pytest

from cumed.errors import CumedError
from training.data import load_version, split_table
from training.sft import tokenize_conversations
from training.tokenizer import BOUNDARY, tokenizer_hash


def test_tokenizer_has_template_and_special_tokens(toy_tokenizer):
    tok, path = toy_tokenizer
    assert (path / "tokenizer.json").is_file()
    assert "{% generation %}" in tok.chat_template
    assert tok.eos_token == "</s>" and tok.pad_token == "<pad>" and tok.bos_token == "<s>"
    assert tok.convert_tokens_to_ids(BOUNDARY) != tok.unk_token_id
    # byte level: any Chinese text round-trips
    text = "膀胱癌患者术后复查，罕见字：癃闭。"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_wrong_kind_is_a_clear_error(toy_store):
    st, refs = toy_store
    with pytest.raises(CumedError, match="dataset of the wrong kind for the stage: sft needs conversations"):
        load_version(st, refs["docs"], "sft")
    with pytest.raises(CumedError, match="wrong kind.*rm needs preferences"):
        load_version(st, refs["sft"], "rm")


def test_missing_split_names_the_splits_present(toy_store):
    st, refs = toy_store
    dv = load_version(st, refs["sft"], "sft")
    with pytest.raises(CumedError, match=r"missing split 'test' in toy-sft@1: it has train, validation"):
        split_table(dv, "test", ["id"])
    with pytest.raises(CumedError, match="missing split"):
        split_table(st.get(refs["docs"]), "train", ["id"])


def test_cache_hits_and_keys_on_settings(toy_store, toy_tokenizer, tmp_path):
    st, refs = toy_store
    tok, _ = toy_tokenizer
    dv = st.get(refs["sft"])
    a, info_a = tokenize_conversations(dv, tok, "train", 256, False, tmp_path)
    b, info_b = tokenize_conversations(dv, tok, "train", 256, False, tmp_path)
    c, info_c = tokenize_conversations(dv, tok, "train", 300, False, tmp_path)
    assert not info_a["hit"] and info_b["hit"] and not info_c["hit"]
    assert a == b == c and info_a["key"] == info_b["key"] != info_c["key"]
    assert len(tokenizer_hash(tok)) == 64
