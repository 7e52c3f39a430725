"""Scoring responses with a reward model: how a (prompt, response) is rendered, and its reward read.

The reward recipe trains on exactly this rendering and rejection sampling scores with it, so it
lives apart from both recipes: one definition, and a recipe never imports from another recipe.
The rendering is "prompt as the user turn + response as the assistant turn" through the chat
template, cut from the left so the response end (what is scored) is always kept.
"""

from __future__ import annotations

import torch


def encode_pair_side(tok, prompt: str, response: str, block_size: int) -> list[int]:
    ids = tok.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
                                  tokenize=True, return_dict=True)["input_ids"]
    return list(ids[-block_size:])  # keep the response end (what is scored); trim the prompt's start


@torch.no_grad()
def score(model, tok, prompt: str, responses: list[str], block_size: int, batch_size: int = 16) -> list[float]:
    """Reward of each response to ``prompt`` (used by rejection sampling)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(responses), batch_size):
        seqs = [encode_pair_side(tok, prompt, r, block_size) for r in responses[i:i + batch_size]]
        L = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), L), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = torch.tensor(s)
            mask[r, :len(s)] = 1
        out += model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits.squeeze(-1).float().tolist()
    return out
