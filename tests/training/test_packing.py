"""Packed rows: no attention across documents, same logits and loss as running each alone."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from training.packing import IGNORE, collate_packed, pack_documents, pack_sequences, pad_batch, real_token_fraction
from training.lm_objective import count_items, lm_loss


def tiny(impl="sdpa", vocab=120):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=128, attn_implementation=impl)
    return LlamaForCausalLM(cfg).eval()


DOCS = [[5, 6, 7, 8, 9], [10, 11, 12], [13, 14, 15, 16, 17, 18, 19], [20, 21, 22, 23]]


def test_pack_documents_layout():
    rows = pack_documents(DOCS, 8, eos_id=2, drop_last=False)
    assert all(len(r["input_ids"]) == 8 for r in rows)
    flat = [t for r in rows for t in r["input_ids"]]
    assert flat[:24] == [5, 6, 7, 8, 9, 2, 10, 11, 12, 2, 13, 14, 15, 16, 17, 18, 19, 2, 20, 21, 22, 23, 2, 2]
    assert rows[0]["position_ids"] == [0, 1, 2, 3, 4, 5, 0, 1]
    assert rows[1]["position_ids"][:2] == [0, 1]  # the cut document restarts in the next row
    assert rows[0]["labels"][6] == IGNORE  # eos of doc 1 must not learn to predict doc 2


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_packed_logits_match_each_document_alone(impl):
    model = tiny(impl)
    rows = pack_documents(DOCS, sum(len(d) + 1 for d in DOCS), eos_id=2)
    assert len(rows) == 1
    batch = collate_packed(rows)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        off = 0
        for d in DOCS:
            alone = model(input_ids=torch.tensor([d + [2]])).logits[0]
            assert torch.allclose(packed[off:off + len(d) + 1], alone, atol=1e-4), f"document at {off} saw another"
            off += len(d) + 1


def test_packed_and_unpacked_losses_agree():
    model = tiny()
    rows = pack_documents(DOCS, sum(len(d) + 1 for d in DOCS), eos_id=2)
    batch = collate_packed(rows)
    with torch.no_grad():
        loss_sum, _ = lm_loss(model, batch)
        packed = loss_sum / count_items(batch)
        total, n = 0.0, 0
        for d in DOCS:
            ids = torch.tensor([d + [2]])
            s, _ = lm_loss(model, {"input_ids": ids, "labels": ids})
            total += float(s)
            n += len(d)
    assert abs(float(packed) - total / n) < 1e-5


def test_pack_sequences_isolates_sft_samples():
    model = tiny()
    samples = [{"input_ids": [1, 30, 31, 32, 40, 41, 2], "labels": [IGNORE] * 4 + [40, 41, 2]},
               {"input_ids": [1, 33, 34, 42, 2], "labels": [IGNORE] * 3 + [42, 2]},
               {"input_ids": [1, 35, 43, 44, 45, 2], "labels": [IGNORE] * 2 + [43, 44, 45, 2]}]
    rows = pack_sequences(samples, 20, pad_id=0)
    assert len(rows) == 1 and rows[0]["n_samples"] == 3
    batch = collate_packed(rows)
    padded = pad_batch(samples, pad_id=0)
    with torch.no_grad():
        s_packed, _ = lm_loss(model, batch)
        s_padded, _ = lm_loss(model, padded)
    assert count_items(batch) == count_items(padded) == 3 + 2 + 4
    assert abs(float(s_packed) - float(s_padded)) < 1e-4
    assert real_token_fraction(batch, 0) == pytest.approx(18 / 20)
    assert real_token_fraction(padded) == pytest.approx(18 / 21)
