"""Reward model: the pairwise loss, and > 0.9 accuracy on a separable toy set."""

import torch

from training.reward import pair_batches, pairwise_loss, train_rm
from training.run_folder import Run


class Fixed(torch.nn.Module):
    """A 'model' returning preset rewards, to check the loss arithmetic."""

    def __init__(self, r):
        super().__init__()
        self.r = r

    def forward(self, input_ids, attention_mask, use_cache):
        return type("O", (), {"logits": self.r.unsqueeze(-1)})()


def test_pairwise_loss_with_and_without_margin():
    pairs = [{"chosen": [1, 2], "rejected": [1, 3], "margin": 1.0}, {"chosen": [1], "rejected": [1, 4, 5], "margin": 2.0}]
    r = torch.tensor([2.0, 0.5, 1.0, 1.0])  # chosen rewards, then rejected
    plain = pair_batches(pairs, 2, 0, use_margin=False)[0]
    loss, m = pairwise_loss(Fixed(r), plain)
    want = -(torch.nn.functional.logsigmoid(torch.tensor(1.0)) + torch.nn.functional.logsigmoid(torch.tensor(-0.5)))
    assert torch.allclose(loss, want) and m["correct"] == 1
    margin = pair_batches(pairs, 2, 0, use_margin=True)[0]
    loss_m, _ = pairwise_loss(Fixed(r), margin)
    want_m = -(torch.nn.functional.logsigmoid(torch.tensor(0.0)) + torch.nn.functional.logsigmoid(torch.tensor(-2.5)))
    assert torch.allclose(loss_m, want_m)
    assert plain["input_ids"].shape == (4, 3) and plain["attention_mask"].sum() == 2 + 2 + 1 + 3


def test_rm_separates_a_toy_set(toy_store, toy_tokenizer, tmp_path):
    st, refs = toy_store
    _, tok_path = toy_tokenizer
    res = train_rm(st, refs["pref"], runs_dir=tmp_path / "runs", cache_dir=tmp_path / "cache", tokenizer=str(tok_path),
                   lr=1e-3, epochs=6, block_size=128, micro_batch_size=8, batch_size=8)
    ev = res["eval"]
    assert ev["validation_accuracy"] > 0.9 and ev["test_accuracy"] > 0.9, ev
    assert ev["validation_pairs"] == 8 and ev["test_pairs"] == 8
    losses = [m["loss"] for m in Run(res["run"]).metrics() if "loss" in m]
    assert losses[-1] < losses[0]
