"""Packed vs padded SFT batches on a real conversations version: how much of each batch is real tokens.

    .venv/bin/cumed build datasets/cumed-sft.yaml --store /tmp/tr-store
    python benchmarks/packing_bench.py --store /tmp/tr-store --ref cumed-sft@1 [--vocab 8000] [--blocks 512 1024 2048 4096]

Tokenises the train split with a byte-level BPE trained on the version (chat template, assistant
mask) and reports, for padded batches (batch 16 in dataset order, and batch 16 sorted by length)
and for first-fit-decreasing packing into rows of each block size:
  real-token fraction   non-padding positions / all positions (what the GPU computes for nothing)
  trained fraction      positions with a label (assistant tokens) / all positions
  rows                  rows a single epoch needs (packed: and the lower bound ceil(tokens / block))
  all rows but the emptiest   packed rows are full except the one tail row an epoch leaves
and the forward+backward time of a tiny LLaMA on CPU for one epoch of each layout (indicative only).
Writes nothing; paste the printed table into BENCHMARKS.md.
"""

import argparse
import tempfile
import time

from cumed.store import Store
from training.packing import IGNORE, collate_packed, pack_sequences, pad_batch, real_token_fraction
from training.config import load_config
from training.lm_objective import count_items, lm_loss
from training.model import build_model
from training.sft import tokenize_conversations
from training.tokenizer import load_tokenizer, train_tokenizer_from_version

p = argparse.ArgumentParser()
p.add_argument("--store", default="/tmp/tr-store")
p.add_argument("--ref", default="cumed-sft@1")
p.add_argument("--vocab", type=int, default=8000)
p.add_argument("--batch", type=int, default=16)
p.add_argument("--blocks", type=int, nargs="+", default=[512, 1024, 2048, 4096])
p.add_argument("--time", action="store_true", help="also time one epoch of a tiny model per layout")
a = p.parse_args()

dv = Store(a.store, create=False).get(a.ref)
with tempfile.TemporaryDirectory() as tmp:
    train_tokenizer_from_version(dv, a.vocab, f"{tmp}/tok")
    tok = load_tokenizer(f"{tmp}/tok")
    samples, _ = tokenize_conversations(dv, tok, "train", 1 << 20, False, f"{tmp}/cache")
lengths = sorted(len(s["input_ids"]) for s in samples)
print(f"{dv.ref}: {len(samples)} train dialogues, tokens {sum(lengths):,} (min {lengths[0]}, median "
      f"{lengths[len(lengths) // 2]}, max {lengths[-1]}), assistant tokens "
      f"{sum(sum(t != IGNORE for t in s['labels']) for s in samples):,}; tokenizer: byte-level BPE {len(tok)}")


def layouts():
    yield "padded, dataset order", [pad_batch(samples[i:i + a.batch], tok.pad_token_id) for i in range(0, len(samples), a.batch)]
    by_len = sorted(samples, key=lambda s: len(s["input_ids"]))
    yield "padded, length-sorted", [pad_batch(by_len[i:i + a.batch], tok.pad_token_id) for i in range(0, len(by_len), a.batch)]
    for block in a.blocks:
        if block < lengths[-1]:
            print(f"block {block}: skipped, the longest dialogue has {lengths[-1]} tokens (truncation off)")
            continue
        rows = pack_sequences(samples, block, tok.pad_token_id)
        per = max(1, a.batch * 512 // block)  # about the same tokens per batch as 16 rows of 512
        yield f"packed, block {block}", [collate_packed(rows[i:i + per]) for i in range(0, len(rows), per)]


cfg = load_config("sft", block_size=max(lengths[-1], max(a.blocks)))
print("\n| layout | rows | fewest rows possible | positions | real-token fraction | same, all rows but the emptiest "
      "| trained fraction |" + (" CPU epoch s |" if a.time else ""))
print("|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if a.time else ""))
for name, batches in layouts():
    pos = sum(b["input_ids"].numel() for b in batches)
    real = sum(real_token_fraction(b, tok.pad_token_id) * b["input_ids"].numel() for b in batches)
    trained = sum(int((b["labels"] != IGNORE).sum()) for b in batches)
    rows = sum(b["input_ids"].shape[0] for b in batches)
    width = batches[0]["input_ids"].shape[1]
    fills = sorted(r for b in batches for r in (b["input_ids"] != tok.pad_token_id).sum(1).tolist())
    best = f"{-(-sum(lengths) // width)}" if name.startswith("packed") else "-"
    rest = f"{sum(fills[1:]) / (width * (len(fills) - 1)):.2%}" if name.startswith("packed") else "-"
    line = f"| {name} | {rows} | {best} | {pos:,} | {real / pos:.2%} | {rest} | {trained / pos:.2%} |"
    if a.time:
        model = build_model(cfg, tok)
        t = time.perf_counter()
        for b in batches:
            loss, _ = lm_loss(model, b)
            (loss / max(count_items(b), 1)).backward()
        line += f" {time.perf_counter() - t:.1f} |"
    print(line, flush=True)
