"""Packing: many sequences per fixed-length row, each attending only to itself.

A packed row carries ``position_ids`` that restart at 0 at every sequence start. With
``attention_mask=None``, transformers (5.x, ``masking_utils.find_packed_sequence_indices``)
reads those restarts and builds a block-diagonal causal mask for eager and sdpa attention, and
flash-attention 2/3 uses them as varlen boundaries: a token never sees another sequence. The
test compares a packed row's logits with each sequence run alone (1e-4).

Two packers:

``pack_documents``  pretraining, the paper's "documents concatenated into fixed-length blocks":
                    documents + ``</s>`` are laid end to end and cut every ``block_size`` tokens;
                    a document cut at a row end continues at position 0 in the next row. The
                    label of each sequence's first token is -100 (nothing in the row may predict it).
``pack_sequences``  SFT and RS: whole samples (already masked: labels -100 outside assistant
                    turns) are placed first-fit-decreasing into rows; a sample is never split;
                    the tail of a row is padding (its own segment, labels -100).

``pad_batch`` is the plain alternative (one sample per row, right padding, attention mask) that
the packing benchmark compares with.
"""

from __future__ import annotations

import torch

from cumed.errors import CumedError

IGNORE = -100


def _row(ids: list[int], pos: list[int], labels: list[int]) -> dict:
    return {"input_ids": ids, "position_ids": pos, "labels": labels}


def pack_documents(docs: list[list[int]], block_size: int, eos_id: int, drop_last: bool = True) -> list[dict]:
    """Concatenate tokenised documents (each followed by eos) into rows of ``block_size``."""
    rows, ids, pos, labels = [], [], [], []
    for doc in docs:
        seq = [*doc, eos_id]
        p = 0
        for t in seq:
            ids.append(t)
            pos.append(p)
            labels.append(IGNORE if p == 0 else t)
            p += 1
            if len(ids) == block_size:
                rows.append(_row(ids, pos, labels))
                ids, pos, labels = [], [], []
                p = 0  # the rest of the document starts a new segment in the next row
    if ids and not drop_last:
        n = block_size - len(ids)
        rows.append(_row(ids + [eos_id] * n, pos + list(range(n)), labels + [IGNORE] * n))
    return rows


def pack_sequences(samples: list[dict], block_size: int, pad_id: int) -> list[dict]:
    """First-fit-decreasing packing of ``{"input_ids", "labels"}`` samples into rows.

    Samples longer than ``block_size`` must have been truncated or rejected before (sft does).
    Order is deterministic: by length (longest first), ties by input order.
    """
    order = sorted(range(len(samples)), key=lambda i: (-len(samples[i]["input_ids"]), i))
    bins: list[list[int]] = []
    free: list[int] = []
    for i in order:
        n = len(samples[i]["input_ids"])
        if n > block_size:
            raise CumedError(f"sample of {n} tokens is longer than the block ({block_size}); truncate or raise block_size")
        for b, room in enumerate(free):
            if room >= n:
                bins[b].append(i)
                free[b] -= n
                break
        else:
            bins.append([i])
            free.append(block_size - n)
    rows = []
    for members in bins:
        ids, pos, labels = [], [], []
        for i in sorted(members):
            s = samples[i]
            ids += s["input_ids"]
            pos += list(range(len(s["input_ids"])))
            labels += s["labels"]
        n = block_size - len(ids)
        rows.append({**_row(ids + [pad_id] * n, pos + list(range(n)), labels + [IGNORE] * n), "n_samples": len(members)})
    return rows


def pad_batch(samples: list[dict], pad_id: int, length: int | None = None) -> dict:
    """One sample per row, right-padded to the longest (or ``length``), with an attention mask."""
    L = length or max(len(s["input_ids"]) for s in samples)
    ids = torch.full((len(samples), L), pad_id, dtype=torch.long)
    labels = torch.full((len(samples), L), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(samples), L), dtype=torch.long)
    for r, s in enumerate(samples):
        n = len(s["input_ids"])
        ids[r, :n] = torch.tensor(s["input_ids"])
        labels[r, :n] = torch.tensor(s["labels"])
        mask[r, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def collate_packed(rows: list[dict]) -> dict:
    """Stack packed rows; no attention mask on purpose (the position_ids carry the boundaries)."""
    return {k: torch.tensor([r[k] for r in rows], dtype=torch.long) for k in ("input_ids", "position_ids", "labels")}


def real_token_fraction(batch: dict, pad_id: int | None = None) -> float:
    """Share of positions that hold a real token (not padding) in a collated batch.

    Padded batches say it with their attention mask; in packed rows padding is the trailing run of
    ``pad_id`` (a special token that text never produces).
    """
    if "attention_mask" in batch:
        return float(batch["attention_mask"].float().mean())
    return float((batch["input_ids"] != pad_id).float().mean())
