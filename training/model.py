"""The model a stage trains: a Hugging Face checkpoint folder, or a tiny LLaMA built from the config.

Real runs start from a folder (the base model, or the previous stage's ``final/``); tests, demos
and benchmarks have nothing to download, so ``model: null`` builds a small LLaMA from the
``tiny_*`` values with the tokenizer's vocabulary. Either way the seed is set first, so the same
config gives the same initial weights. Before either, the memory plan checks that the config's
setting fits this launch's GPUs (``training/memory_plan.py``); for a folder only its config.json is
read, so a 13B that cannot fit stops in a second with the numbers and the fix.
"""

from __future__ import annotations

from pathlib import Path

from cumed.errors import CumedError

from training.distributed import dist_info
from training.memory_plan import check_fits
from training.seeds import set_seed


def build_model(cfg: dict, tokenizer, head: str = "causal"):
    """``model:`` a Hugging Face folder, or null for a tiny LLaMA from the ``tiny_*`` values.

    ``head``: ``causal`` (pretrain, SFT, policy) or ``reward`` (one scalar per sequence, read at the
    last non-pad token).
    """
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, LlamaConfig

    if cfg.get("model") and not (Path(cfg["model"]) / "config.json").is_file():
        raise CumedError(f"model folder {Path(cfg['model'])} has no config.json; give a Hugging Face checkpoint folder or model: null")
    check_fits(cfg, tokenizer, cfg.get("model"), dist_info()[1], head=head)  # before any weight exists
    set_seed(int(cfg["seed"]))
    dropout = float(cfg.get("dropout") or 0.0)
    if cfg.get("model"):
        path = Path(cfg["model"])
        kw = {"attention_dropout": dropout, "pad_token_id": tokenizer.pad_token_id}
        if head == "reward":
            return AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1, **kw)
        return AutoModelForCausalLM.from_pretrained(str(path), **kw)
    conf = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=int(cfg["tiny_hidden_size"]), num_hidden_layers=int(cfg["tiny_layers"]),
        num_attention_heads=int(cfg["tiny_heads"]), num_key_value_heads=int(cfg["tiny_kv_heads"]),
        intermediate_size=int(cfg["tiny_intermediate_size"]), max_position_embeddings=max(int(cfg["block_size"]), 4096),
        attention_dropout=dropout, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, num_labels=1, tie_word_embeddings=False,
    )
    conf._attn_implementation = cfg.get("attn_implementation") or "sdpa"
    if head == "reward":
        from transformers import LlamaForSequenceClassification

        return LlamaForSequenceClassification(conf)
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(conf)
