"""A small byte-level BPE trained on a dataset version, saved as a ``PreTrainedTokenizerFast``.

Nothing can be downloaded here, so tests, demos and toy runs train their own tokenizer; a real
run points ``tokenizer:`` at the base model's folder (Ziya-LLaMA's Chinese-extended vocabulary in
the paper). The saved folder carries:

- special tokens: ``<s>`` (bos), ``</s>`` (eos), ``<pad>`` (pad), the role markers
  ``<|system|>``, ``<|user|>``, ``<|assistant|>``, ``<|end|>`` and ``<|qa_boundary|>`` (the
  paper's boundary between concatenated short QA pairs, see ``curation/sft/pack.py``);
- a chat template whose assistant turns sit inside ``{% generation %}`` markers, so
  ``apply_chat_template(..., return_assistant_tokens_mask=True)`` marks exactly the tokens the
  SFT loss trains on (the reply and the ``</s>`` that ends it).

Byte-level: every string encodes (no unknown token), which matters for rare CJK characters. It
deliberately does not try to match LLaMA's SentencePiece vocabulary.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from cumed.errors import CumedError
from cumed.store import DatasetVersion

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
BOUNDARY = "<|qa_boundary|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, *ROLE_TOKENS, BOUNDARY]

# One line on purpose: whitespace inside a Jinja template becomes text the model sees.
# Assistant turns: "<|assistant|>" + {% generation %}reply</s>{% endgeneration %}; the role marker
# is context, the reply and its end-of-sequence are what the model learns to produce.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}"
    "<|assistant|>{% generation %}{{ m['content'] }}{{ eos_token }}{% endgeneration %}"
    "{% else %}"
    "<|{{ m['role'] }}|>{{ m['content'] }}<|end|>"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def iter_texts(dv: DatasetVersion) -> Iterator[str]:
    """Training text of a version: document ``text`` or every conversation turn's content."""
    if dv.kind == "documents":
        for batch in dv.iter_batches(columns=["text"]):
            yield from (t for t in batch.column("text").to_pylist() if t)
    elif dv.kind == "conversations":
        for batch in dv.iter_batches(columns=["messages"]):
            for msgs in batch.column("messages").to_pylist():
                yield from (m["content"] for m in msgs if m["content"])
    elif dv.kind == "preferences":
        for batch in dv.iter_batches(columns=["prompt", "chosen", "rejected"]):
            for row in batch.to_pylist():
                yield from (row["prompt"], row["chosen"], row["rejected"])
    else:
        raise CumedError(f"cannot train a tokenizer on {dv.ref} ({dv.kind}); use a documents or conversations version")


def train_tokenizer(texts, vocab_size: int, out: str | Path, model_max_length: int = 4096) -> Path:
    """Train a byte-level BPE on ``texts`` (an iterable of strings) and save the folder ``out``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise CumedError(f"--vocab-size {vocab_size} is too small: a byte-level BPE needs at least "
                         f"{256 + len(SPECIAL_TOKENS)} (256 bytes + {len(SPECIAL_TOKENS)} special tokens)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   additional_special_tokens=[*ROLE_TOKENS, BOUNDARY],
                                   model_max_length=model_max_length)
    fast.chat_template = CHAT_TEMPLATE
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    return out


def train_tokenizer_from_version(dv: DatasetVersion, vocab_size: int, out: str | Path) -> dict:
    path = train_tokenizer(iter_texts(dv), vocab_size, out)
    (path / "cumed_tokenizer.json").write_text(json.dumps({"dataset": dv.ref, "content_hash": dv.content_hash,
                                                           "vocab_size": vocab_size}, indent=2) + "\n")
    tok = load_tokenizer(path)
    return {"tokenizer": str(path), "dataset": dv.ref, "vocab_size": len(tok), "sha256": tokenizer_hash(tok)}


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    p = Path(path)
    if not (p / "tokenizer.json").is_file() and not (p / "tokenizer_config.json").is_file():
        raise CumedError(f"tokenizer folder {path} has no tokenizer.json; train one with "
                         f"'cumed train tokenizer --dataset REF --out {path}' or point at a model folder")
    return AutoTokenizer.from_pretrained(str(p))


def tokenizer_hash(tok) -> str:
    """sha256 of what decides token ids: the vocabulary/merges, special tokens and chat template."""
    h = hashlib.sha256()
    h.update(tok.backend_tokenizer.to_str().encode())
    h.update(json.dumps([tok.bos_token, tok.eos_token, tok.pad_token, tok.chat_template or ""]).encode())
    return h.hexdigest()


def resolve_tokenizer(cfg: dict, dv: DatasetVersion, run):
    """The tokenizer a stage uses, in this order: ``tokenizer:``; the one this run trained before
    (a resume); the ``model:`` folder's; else a byte-level BPE trained on ``dv`` into the run folder
    (by rank 0 only; the other ranks wait and load it)."""
    if cfg.get("tokenizer"):
        return load_tokenizer(cfg["tokenizer"])
    own = Path(run.path) / "tokenizer"
    if (own / "tokenizer.json").is_file():
        return load_tokenizer(own)
    if cfg.get("model") and (Path(cfg["model"]) / "tokenizer.json").is_file():
        return load_tokenizer(cfg["model"])
    if run.rank == 0:
        train_tokenizer_from_version(dv, int(cfg["tokenizer_vocab_size"]), own)
    run.barrier()
    return load_tokenizer(own)
