"""A tiny chat model for tests that need a real one behind ``cumed serve``: a byte-level BPE with
cumed's chat template trained on ``texts``, and a 2-layer LLaMA built from a config (no hub)."""

from __future__ import annotations

from pathlib import Path


def tiny_chat_model(texts, folder: Path, vocab_size: int, max_positions: int = 512) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from training.tokenizer import train_tokenizer

    model = train_tokenizer(texts, vocab_size, folder)
    tok = AutoTokenizer.from_pretrained(str(model))
    torch.manual_seed(0)
    conf = LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=4, intermediate_size=64, max_position_embeddings=max_positions,
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       tie_word_embeddings=False)
    LlamaForCausalLM(conf).save_pretrained(str(model))
    return Path(model)
