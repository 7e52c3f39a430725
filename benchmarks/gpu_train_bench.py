"""GPU throughput of packed rows vs plain padded transformers batches on a ~1B LLaMA (NOT RUN HERE).

    python benchmarks/gpu_train_bench.py --store /tmp/tr-store --ref cumed-sft@1 [--steps 20] [--block 4096]
           [--attn sdpa|flash_attention_2] [--micro 4] [--hidden 2048 --layers 16 --heads 16 --kv-heads 8]

Needs one CUDA GPU (bf16). No GPU was available when this was written: the script has not been run
and benchmarks/ has no results for it yet.

Model: LLaMA of about 1.1B parameters (hidden 2048, 16 layers, 16 heads / 8 KV heads, MLP 5632,
vocab of the tokenizer trained on the version, default 32,000), random init (throughput does not
depend on the weights). Data: the version's train split, dialogues tokenised with the SFT chat
template; repeated to fill the steps. Two layouts, same model, same optimizer (AdamW, bf16 autocast):

  padded   one dialogue per row, right padding to the longest in the micro-batch, attention_mask
           (what plain transformers/Trainer does without packing)
  packed   training.packing.pack_sequences rows of --block tokens, position_ids reset per dialogue,
           attention_mask=None (transformers derives the per-dialogue mask; varlen with flash-attn)

Reported per layout: real tokens/s (non-padding tokens processed per second), positions/s,
MFU = 6 * n_params * real tokens/s / peak bf16 FLOP/s (attention FLOPs ignored; peak from --peak-tflops,
989 for H100 SXM dense bf16), peak memory.
"""

import argparse
import json
import tempfile
import time

import torch

from curation.store import Store
from training.packing import IGNORE, collate_packed, pack_sequences, pad_batch
from training.pretrain import lm_loss
from training.sft import tokenize_conversations
from training.tokenizer import load_tokenizer, train_tokenizer_from_version

p = argparse.ArgumentParser()
p.add_argument("--store", default="/tmp/tr-store")
p.add_argument("--ref", default="cumed-sft@1")
p.add_argument("--vocab", type=int, default=32000)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--block", type=int, default=4096)
p.add_argument("--micro", type=int, default=4, help="rows per step (packed); padded uses enough rows for the same real tokens")
p.add_argument("--attn", default="sdpa")
p.add_argument("--hidden", type=int, default=2048)
p.add_argument("--layers", type=int, default=16)
p.add_argument("--heads", type=int, default=16)
p.add_argument("--kv-heads", type=int, default=8)
p.add_argument("--intermediate", type=int, default=5632)
p.add_argument("--peak-tflops", type=float, default=989.0)
a = p.parse_args()
if not torch.cuda.is_available():
    raise SystemExit("gpu_train_bench needs a CUDA GPU; run it on a GPU machine")

from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

dv = Store(a.store, create=False).get(a.ref)
with tempfile.TemporaryDirectory() as tmp:
    train_tokenizer_from_version(dv, a.vocab, f"{tmp}/tok")
    tok = load_tokenizer(f"{tmp}/tok")
    samples, _ = tokenize_conversations(dv, tok, "train", a.block, True, f"{tmp}/cache")


def make_model():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=a.hidden, num_hidden_layers=a.layers,
                      num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, intermediate_size=a.intermediate,
                      max_position_embeddings=a.block, pad_token_id=tok.pad_token_id, attn_implementation=a.attn)
    return LlamaForCausalLM(cfg).to("cuda")


def bench(name, batches):
    model = make_model()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    torch.cuda.reset_peak_memory_stats()
    real = positions = 0
    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            torch.cuda.synchronize()
            t0, real, positions = time.perf_counter(), 0, 0
        b = {k: v.cuda(non_blocking=True) for k, v in batches[i % len(batches)].items() if torch.is_tensor(v)}
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss, _ = lm_loss(model, b)
            n = (b["labels"][:, 1:] != IGNORE).sum().clamp(min=1)
        (loss / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        real += int((b["input_ids"] != tok.pad_token_id).sum())
        positions += b["input_ids"].numel()
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    tps = real / dt
    res = {"layout": name, "params": n_params, "real_tokens_per_s": round(tps), "positions_per_s": round(positions / dt),
           "real_fraction": round(real / positions, 4), "mfu": round(6 * n_params * tps / (a.peak_tflops * 1e12), 4),
           "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2), "attn": a.attn}
    print(json.dumps(res), flush=True)
    del model, opt
    torch.cuda.empty_cache()
    return res


rows = pack_sequences(samples, a.block, tok.pad_token_id)
packed = [collate_packed(rows[i:i + a.micro]) for i in range(0, len(rows), a.micro)]
mean_len = sum(len(s["input_ids"]) for s in samples) / len(samples)
per = max(1, int(a.micro * a.block / mean_len))  # about the same real tokens per step as a packed step
padded = [pad_batch(samples[i:i + per], tok.pad_token_id) for i in range(0, len(samples), per)]
results = [bench("padded", padded), bench("packed", packed)]
print(f"speed-up (real tokens/s): {results[1]['real_tokens_per_s'] / results[0]['real_tokens_per_s']:.2f}x")
