"""The next-token objective that pretraining, SFT and rejection sampling share.

``lm_loss`` returns the *summed* cross-entropy over labelled positions and ``count_items`` the
number of those positions; ``micro_batches`` stores that count in each batch as ``n_items``. The
loop (``training/fit.py``) divides the step's summed loss by the items of the whole step across
ranks, so the gradient does not depend on how tokens fell into micro-batches. Its own module
because the recipes share it: a recipe imports shared pieces from here, never from another recipe.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.packing import IGNORE, collate_packed


def lm_loss(model, batch) -> tuple[torch.Tensor, dict]:
    """Summed next-token cross-entropy over labelled positions (the loop divides by the count).

    ``attention_mask`` absent and ``use_cache=False``: transformers then derives the per-document
    mask from ``position_ids`` (with a cache it would not look at them).
    """
    out = model(input_ids=batch["input_ids"], position_ids=batch.get("position_ids"),
                attention_mask=batch.get("attention_mask"), use_cache=False)
    logits = out.logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE, reduction="sum")
    return loss, {}


def count_items(batch: dict) -> int:
    return int((batch["labels"][:, 1:] != IGNORE).sum())


def micro_batches(rows: list[dict], size: int) -> list[dict]:
    out = []
    for i in range(0, len(rows), size):
        b = collate_packed(rows[i:i + size])
        b["n_items"] = count_items(b)
        out.append(b)
    return out
