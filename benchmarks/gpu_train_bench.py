"""GPU throughput of packed rows vs plain padded transformers batches on a ~1B LLaMA.

Two steps, so that the GPU machine (which has torch and transformers but not datatrove, OpenCC
or ../shared) only runs the second:

    # here: tokenise the SFT version's train split with a tokenizer trained on it
    .venv/bin/python benchmarks/gpu_train_bench.py prepare --store /tmp/tr-store --ref cumed-sft@1 \\
        --out benchmarks/out/gpu_samples.npz
    # on the GPU machine (the device tool; benchmarks/out is git-ignored, so carry it):
    python3 benchmarks/gpu_train_bench.py run --samples benchmarks/out/gpu_samples.npz \\
        --configs padded:sdpa,packed:sdpa,packed:flex_attention [--compile] [--steps 20] [--block 4096]
    # a CPU smoke run of the same code with a tiny model (what was checked without a GPU):
    .venv/bin/python benchmarks/gpu_train_bench.py run --samples benchmarks/out/gpu_samples.npz --device cpu \\
        --hidden 64 --layers 2 --heads 4 --kv-heads 2 --intermediate 128 --block 512 --steps 2 --warmup 1

Model: LLaMA of about 1.1B parameters (hidden 2048, 16 layers, 16 heads / 8 KV heads, MLP 5632,
vocab of the tokenizer trained on the version, default 32,000), random init (throughput does not
depend on the weights). Data: the version's train split, dialogues tokenised with the SFT chat
template, repeated to fill the steps. Layouts, same model, same optimizer (AdamW, bf16 autocast):

  padded   one dialogue per row, right padding to the longest in the micro-batch, attention_mask
           (what plain transformers/Trainer does without packing)
  packed   training.packing.pack_sequences rows of --block tokens, position_ids reset per dialogue,
           attention_mask=None (transformers derives the per-dialogue mask from the position ids)

``--param-dtype bf16`` keeps the weights in bf16 (no autocast) for the upper bound. One JSON
line per config: real tokens/s (non-padding tokens processed per second), positions/s,
MFU = 6 * n_params * real tokens/s / peak bf16 FLOP/s (attention FLOPs ignored; --peak-tflops,
default 989 = H100/H200 SXM dense bf16), peak memory. Target (issue 8): >= 40 % MFU packed;
anchor on one H100: plain transformers + sdpa, packed 8,192-token rows, 24.6 %; padded, 2.9 %.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def prepare(a) -> None:
    from cumed.store import Store
    from training.sft import tokenize_conversations
    from training.tokenizer import load_tokenizer, train_tokenizer_from_version

    dv = Store(a.store, create=False).get(a.ref)
    with tempfile.TemporaryDirectory() as tmp:
        train_tokenizer_from_version(dv, a.vocab, f"{tmp}/tok")
        tok = load_tokenizer(f"{tmp}/tok")
        samples, _ = tokenize_conversations(dv, tok, "train", a.max_len, True, f"{tmp}/cache")
    lens = np.array([len(s["input_ids"]) for s in samples], dtype=np.int64)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(a.out, input_ids=np.concatenate([s["input_ids"] for s in samples]).astype(np.int64),
             labels=np.concatenate([s["labels"] for s in samples]).astype(np.int64), lengths=lens,
             vocab_size=len(tok), pad_id=tok.pad_token_id, ref=dv.ref)
    print(json.dumps({"samples": len(samples), "tokens": int(lens.sum()), "vocab": len(tok), "ref": dv.ref, "out": a.out}))


def load_samples(path: str) -> tuple[list[dict], int, int]:
    z = np.load(path)
    offs = np.concatenate([[0], np.cumsum(z["lengths"])])
    samples = [{"input_ids": z["input_ids"][s:e].tolist(), "labels": z["labels"][s:e].tolist()}
               for s, e in zip(offs[:-1], offs[1:])]
    return samples, int(z["vocab_size"]), int(z["pad_id"])


def run(a) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from training.packing import IGNORE, collate_packed, pack_sequences, pad_batch
    from training.lm_objective import lm_loss

    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run on the GPU machine, or --device cpu for a smoke run")
    cuda = a.device == "cuda"
    samples, vocab, pad_id = load_samples(a.samples)
    samples = [s for s in samples if len(s["input_ids"]) <= a.block]

    def make_model(attn: str):
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=a.hidden, num_hidden_layers=a.layers,
                          num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, intermediate_size=a.intermediate,
                          max_position_embeddings=a.block, pad_token_id=pad_id, attn_implementation=attn)
        model = LlamaForCausalLM(cfg).to(a.device)
        return model.to(torch.bfloat16) if a.param_dtype == "bf16" else model

    rows = pack_sequences(samples, a.block, pad_id)
    layouts = {"packed": [collate_packed(rows[i:i + a.micro]) for i in range(0, len(rows), a.micro)]}
    mean_len = sum(len(s["input_ids"]) for s in samples) / len(samples)
    per = max(1, int(a.micro * a.block / mean_len))  # about the same real tokens per step as a packed step
    layouts["padded"] = [pad_batch(samples[i:i + per], pad_id) for i in range(0, len(samples), per)]

    def bench(layout: str, attn: str) -> dict:
        model = make_model(attn)
        n_params = sum(p.numel() for p in model.parameters())
        step_model = torch.compile(model) if a.compile else model
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=cuda)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        batches = layouts[layout]
        real = positions = 0
        t0 = time.perf_counter()
        for i in range(a.warmup + a.steps):
            if i == a.warmup:
                if cuda:
                    torch.cuda.synchronize()
                t0, real, positions = time.perf_counter(), 0, 0
            b = {k: v.to(a.device, non_blocking=True) for k, v in batches[i % len(batches)].items() if torch.is_tensor(v)}
            with torch.autocast(a.device, dtype=torch.bfloat16, enabled=cuda and a.param_dtype == "fp32"):
                loss, _ = lm_loss(step_model, b)
                n = (b["labels"][:, 1:] != IGNORE).sum().clamp(min=1)
            (loss / n).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            real += int((b["input_ids"] != pad_id).sum())
            positions += b["input_ids"].numel()
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        tps = real / dt
        res = {"layout": layout, "attn": attn, "compile": a.compile, "param_dtype": a.param_dtype, "device": a.device,
               "params": n_params,
               "block": a.block, "rows_per_step": a.micro if layout == "packed" else per, "steps": a.steps,
               "real_tokens_per_s": round(tps), "positions_per_s": round(positions / dt),
               "real_fraction": round(real / positions, 4), "final_loss": round((loss / n).item(), 4),
               "mfu": round(6 * n_params * tps / (a.peak_tflops * 1e12), 4) if cuda else None,
               "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}
        print(json.dumps(res), flush=True)
        del model, step_model, opt
        if cuda:
            torch.cuda.empty_cache()
        return res

    results = []
    for cfg in a.configs.split(","):
        layout, attn = cfg.split(":")
        try:
            results.append(bench(layout, attn))
        except Exception as e:  # one failing kernel choice must not cost the other measurements
            print(json.dumps({"layout": layout, "attn": attn, "error": f"{type(e).__name__}: {e}"[:500]}), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare", help="tokenise a conversations version (here, with the cumed venv)")
    pp.add_argument("--store", default="/tmp/tr-store")
    pp.add_argument("--ref", default="cumed-sft@1")
    pp.add_argument("--vocab", type=int, default=32000)
    pp.add_argument("--max-len", type=int, default=8192)
    pp.add_argument("--out", default="benchmarks/out/gpu_samples.npz")
    pr = sub.add_parser("run", help="time the layouts (on the GPU machine)")
    pr.add_argument("--samples", default="benchmarks/out/gpu_samples.npz")
    pr.add_argument("--configs", default="padded:sdpa,packed:sdpa", help="layout:attn_implementation, comma separated")
    pr.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    pr.add_argument("--compile", action="store_true", help="torch.compile the model")
    pr.add_argument("--param-dtype", default="fp32", choices=["fp32", "bf16"],
                    help="fp32 weights under bf16 autocast (default, what the recipes do on GPU) or bf16 weights")
    pr.add_argument("--steps", type=int, default=20)
    pr.add_argument("--warmup", type=int, default=3)
    pr.add_argument("--block", type=int, default=4096)
    pr.add_argument("--micro", type=int, default=4, help="rows per step (packed); padded uses enough rows for the same real tokens")
    pr.add_argument("--hidden", type=int, default=2048)
    pr.add_argument("--layers", type=int, default=16)
    pr.add_argument("--heads", type=int, default=16)
    pr.add_argument("--kv-heads", type=int, default=8)
    pr.add_argument("--intermediate", type=int, default=5632)
    pr.add_argument("--peak-tflops", type=float, default=989.0)
    pr.add_argument("--out", default="", help="also write the results as a JSON list here")
    a = p.parse_args()
    prepare(a) if a.cmd == "prepare" else run(a)


if __name__ == "__main__":
    main()
