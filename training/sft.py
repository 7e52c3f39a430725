"""Stage 2 recipe: supervised fine-tuning on a ``conversations`` version.

- Each dialogue goes through the tokenizer's chat template with
  ``return_assistant_tokens_mask=True``; labels are the token ids inside ``{% generation %}``
  (every assistant turn, including its ``</s>``) and -100 everywhere else (system, user, role
  markers). Multi-turn dialogues keep their whole history.
- Short QA pairs concatenated dataset-side (``curation/sft/pack.py``, ``<|qa_boundary|>``) are
  just multi-turn rows here; the boundary is a special token of our tokenizer.
- Samples are packed first-fit into ``block_size`` rows with per-sample position_ids, so no
  dialogue attends to another (see ``training/packing.py``); ``packing: false`` pads instead.

Errors, never silent zero loss: a tokenizer without a chat template; a template without
generation markers or a truncation that leaves a dialogue without assistant tokens; a dialogue
longer than ``block_size`` with ``truncation: false``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from cumed.errors import CumedError
from cumed.store import Store

from training.checkpoint_lineage import write_lineage
from training.data import cached_table, load_version, split_table
from training.distributed import init_distributed
from training.fit import fit
from training.lm_objective import count_items, lm_loss, micro_batches
from training.model import build_model
from training.packing import IGNORE, pack_sequences, pad_batch
from training.run_folder import open_run
from training.tokenizer import resolve_tokenizer, tokenizer_hash

GENERATION_RE = re.compile(r"\{%-?\s*generation\s*-?%\}")


def check_chat_template(tok) -> None:
    if not getattr(tok, "chat_template", None):
        raise CumedError("tokenizer has no chat template; SFT needs one with {% generation %} markers around assistant "
                         "turns: train one with 'cumed train tokenizer' or set tokenizer.chat_template "
                         "(training.tokenizer.CHAT_TEMPLATE)")


def encode_conversation(tok, messages: list[dict], block_size: int, truncation: bool = False, row_id: str = "") -> dict:
    """``{"input_ids", "labels"}`` for one dialogue; labels -100 exactly outside assistant tokens."""
    check_chat_template(tok)
    enc = tok.apply_chat_template([{"role": m["role"], "content": m["content"]} for m in messages], tokenize=True,
                                  return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = list(enc["input_ids"]), list(enc["assistant_masks"])
    where = f" (row {row_id})" if row_id else ""
    if len(ids) > block_size:
        if not truncation:
            raise CumedError(f"sequence of {len(ids)} tokens is longer than the block ({block_size}){where} with "
                             f"truncation off; raise block_size, set truncation: true, or drop long dialogues dataset-side")
        ids, mask = ids[:block_size], mask[:block_size]
    if not any(mask):
        if not GENERATION_RE.search(tok.chat_template or ""):
            cause = "the chat template has no {% generation %} markers"
        elif not any(m["role"] == "assistant" for m in messages):
            cause = "the dialogue has no assistant turn"
        elif truncation and len(enc["input_ids"]) > block_size:
            cause = "truncation removed every assistant token"
        else:
            cause = "the template marks no assistant token (empty replies?)"
        raise CumedError(f"empty assistant mask{where}: {cause}; the loss would be zero. Fix the template "
                         f"(cumed train tokenizer writes one), raise block_size or drop the row")
    return {"input_ids": ids, "labels": [t if m else IGNORE for t, m in zip(ids, mask)]}


def tokenize_conversations(dv, tok, split: str | None, block_size: int, truncation: bool, cache_dir=None) -> tuple[list[dict], dict]:
    def build() -> pa.Table:
        t = split_table(dv, split, ["id", "messages"])
        rows = [encode_conversation(tok, r["messages"], block_size, truncation, r["id"]) for r in t.to_pylist()]
        return pa.table({"id": t.column("id"),
                         "input_ids": pa.array([r["input_ids"] for r in rows], pa.list_(pa.int32())),
                         "labels": pa.array([r["labels"] for r in rows], pa.list_(pa.int32()))})

    settings = {"stage": "sft", "split": split, "block_size": block_size, "truncation": truncation, "v": 1}
    table, info = cached_table(dv, tokenizer_hash(tok), settings, build, cache_dir)
    return table.select(["input_ids", "labels"]).to_pylist(), info


def sft_batches(samples: list[dict], tok, cfg: dict) -> list[dict]:
    """Packed rows (default) or padded rows, cut into micro-batches with their label counts."""
    if cfg.get("packing", True):
        return micro_batches(pack_sequences(samples, int(cfg["block_size"]), tok.pad_token_id), int(cfg["micro_batch_size"]))
    out, size = [], int(cfg["micro_batch_size"])
    for i in range(0, len(samples), size):
        b = pad_batch(samples[i:i + size], tok.pad_token_id)
        b["n_items"] = count_items(b)
        out.append(b)
    return out


def eval_loss(model, batches: list[dict]) -> float:
    import torch

    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for b in batches:
            loss, _ = lm_loss(model, b)
            total += float(loss)
            n += int(b["n_items"])
    return total / max(n, 1)


def train_sft(store: Store | str, ref: str, config: str | Path | None = None, max_steps: int | None = None,
              runs_dir: str | Path | None = None, resume: str | Path | None = None, progress: bool = False,
              cache_dir=None, stage: str = "sft", extra_datasets: dict | None = None, **overrides) -> dict:
    # 1. config, dataset and run folder (init_distributed joins a torchrun group; no-op otherwise)
    init_distributed()
    dv = load_version(store, ref, "sft")
    run, cfg = open_run(stage, dv, config, max_steps, runs_dir, resume, extra_datasets, **overrides)

    # 2. tokenizer: named, this run's own (resume), the model's, or trained on the dialogues
    tok = resolve_tokenizer(cfg, dv, run)
    check_chat_template(tok)

    # 3. tokenise with assistant-only labels (cached), then pack
    block, trunc = int(cfg["block_size"]), bool(cfg.get("truncation"))
    samples, cache = tokenize_conversations(dv, tok, cfg["split"], block, trunc, cache_dir)
    batches = sft_batches(samples, tok, cfg)
    evaluate = None
    if cfg.get("eval_split"):
        ev_samples, _ = tokenize_conversations(dv, tok, cfg["eval_split"], block, trunc, cache_dir)
        ev_batches = sft_batches(ev_samples, tok, cfg)
        evaluate = lambda m: {f"{cfg['eval_split']}_loss": eval_loss(m, ev_batches)}  # noqa: E731

    # 4. model and loop
    model = build_model(cfg, tok)
    result = fit(run, model, batches, lm_loss, cfg, evaluate=evaluate, progress=progress)
    final = run.save_final(model, tok)
    if run.rank == 0:
        write_lineage(final, stage=stage, engine="cumed", datasets={"train": dv}, parent=cfg.get("model"), tokenizer=tok,
                      config=cfg)
    real = sum(int((b["labels"] != IGNORE).sum()) for b in batches)
    return {"stage": stage, "dataset": dv.ref, "samples": len(samples), "rows": sum(len(b["input_ids"]) for b in batches),
            "assistant_tokens": real, "cache": cache, "final": str(final), **result}

