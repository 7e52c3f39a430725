"""``fit``: the optimisation loop every stage shares, and the reason a resumed run ends where an uninterrupted one would.

AdamW, a warm-up + decay schedule, gradient accumulation, data parallelism across ranks (gloo on
CPU, nccl on GPU; start with ``torchrun``): DDP replicas, or with ``parallelism: fsdp`` FSDP2
shards (``training/sharding.py``, for models whose replica plus optimizer state does not fit one
device), checkpoints every ``checkpoint_every`` steps, resume from the newest checkpoint of the
run folder (sharded ones under FSDP). Data order is a pure function of (seed, epoch), so the data
position is just the step number: a resumed run draws the same micro-batches, and with the RNG
state restored (dropout) it ends with the same weights as a run that was never interrupted
(tested on CPU, where kernels are deterministic; under DDP and FSDP alike).

Deliberately not here: fp16 loss scaling (bf16 needs none), tensor/pipeline parallelism, streaming
datasets. The paper-scale runs (13B) belong to Megatron-LM / LLaMA-Factory via the exports; FSDP
lets this loop train mid-sized models on a few GPUs, and it stays the reference implementation of
each stage.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable

import torch

from cumed.errors import CumedError

from training.distributed import dist_info, unwrap
from training.run_folder import Run
from training.schedule import lr_lambda, warmup_steps
from training.sharding import enable_activation_checkpointing, shard_model

KILL_ENV = "CUMED_TRAIN_KILL_AT"  # fault injection for the resume test: SIGKILL after this step's checkpoint


def micro_batch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def fit(run: Run, model, batches: list[dict], loss_fn, cfg: dict, max_steps: int | None = None,
        evaluate: Callable[[object], dict] | None = None, progress: bool = False) -> dict:
    """Train ``model`` on micro-``batches`` (each with ``n_items``: tokens or pairs it averages over).

    ``loss_fn(model, batch) -> (summed loss tensor, metrics dict)``. One optimizer step takes
    ``grad_accum`` micro-batches on every rank; the loss is the sum over the step's items divided by
    their total count across ranks, so the gradient does not depend on how the items were split.
    Under ``parallelism: fsdp`` the model is sharded in place (its parameters become DTensors) and
    every rank must call ``fit`` and then ``run.save_final``, which gathers the shards.
    """
    if not batches:
        raise CumedError("no training batches: the dataset split is empty after tokenisation")
    mode = cfg.get("parallelism") or "ddp"  # runs saved before the key existed are DDP runs
    if mode not in ("ddp", "fsdp"):
        raise CumedError(f"unknown parallelism {mode!r}; use ddp (replicas) or fsdp (shards)")
    if cfg.get("cpu_offload") and mode != "fsdp":
        raise CumedError("cpu_offload: true offloads FSDP shards; set parallelism: fsdp or cpu_offload: false")
    fsdp = mode == "fsdp"
    device = torch.device(f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu")
    if fsdp:  # before the optimizer: it must hold the sharded parameters
        model = shard_model(model, cfg, device)
    elif cfg.get("activation_checkpointing"):
        enable_activation_checkpointing(model)
    rank, world = dist_info()
    accum = int(cfg.get("grad_accum") or 0) or max(1, int(cfg.get("batch_size") or 1) // (int(cfg.get("micro_batch_size") or 1) * world))
    per_step = accum * world
    steps_per_epoch = max(1, len(batches) // per_step)
    total = int(cfg.get("max_steps") or 0) or steps_per_epoch * int(cfg.get("epochs") or 1)
    cap = max_steps or cfg.get("max_steps_cap")
    if cap:
        total = min(total, int(cap))

    decay, no_decay = [], []
    for n, p in unwrap(model).named_parameters():
        (no_decay if p.ndim < 2 or "norm" in n else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": float(cfg["weight_decay"])}, {"params": no_decay, "weight_decay": 0.0}],
        lr=float(cfg["lr"]), betas=tuple(float(b) for b in cfg.get("betas", (0.9, 0.999))), eps=float(cfg.get("eps", 1e-8)))
    warm = warmup_steps(cfg, total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(cfg.get("schedule", "constant"), warm, total, float(cfg.get("min_lr_ratio") or 0.0)))
    start = run.load_latest(model, optimizer, scheduler)
    if not fsdp:  # shard_model placed the shards (and, with cpu_offload, keeps them in host memory)
        model.to(device)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and cfg.get("precision") == "bf16"
                else contextlib.nullcontext())
    if not fsdp and world > 1 and not isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = torch.nn.parallel.DistributedDataParallel(model)
    kill_at = int(os.environ.get(KILL_ENV, "0") or 0)
    every = int(cfg.get("checkpoint_every") or 0)
    log_every = int(cfg.get("log_every") or 1)
    clip = cfg.get("max_grad_norm")
    model.train()
    t0, last, orders = time.time(), {}, {}
    for step in range(start, total):
        micro = []
        for k in range(accum):  # data position = step: the same micro-batches after a resume
            epoch, pos = divmod(step * per_step + k * world + rank, steps_per_epoch * per_step)
            if epoch not in orders:
                orders = {epoch: micro_batch_order(len(batches), int(cfg["seed"]), epoch)}
            micro.append(batches[orders[epoch][pos % len(batches)]])
        n_local = torch.tensor(float(sum(int(b["n_items"]) for b in micro)))
        n_total = n_local.clone()
        if world > 1:
            torch.distributed.all_reduce(n_total)
        if n_total.item() == 0:
            raise CumedError(f"step {step}: no trained items in the batch (every label is -100); check the chat "
                             f"template's {{% generation %}} markers and truncation")
        loss_sum, extra = 0.0, {}
        for k, b in enumerate(micro):
            sync = k == accum - 1 or world == 1
            ctx = model.no_sync() if (not sync and hasattr(model, "no_sync")) else contextlib.nullcontext()
            if fsdp:  # FSDP's no_sync: keep accumulating unsharded gradients, reduce-scatter on the last one
                model.set_requires_gradient_sync(sync)
            b = {key: (v.to(device) if torch.is_tensor(v) else v) for key, v in b.items()}
            with ctx, autocast:
                loss, m = loss_fn(model, b)
                (loss * world / n_total).backward()
            loss_sum += float(loss.detach())
            for key, v in m.items():
                extra[key] = extra.get(key, 0.0) + float(v)
        # on DTensor parameters clip_grad_norm_ reduces the shards' norms to the global one (same value as DDP's)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip))) if clip else None
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        stat = torch.tensor([loss_sum])
        if world > 1:
            torch.distributed.all_reduce(stat)
        last = {"step": step + 1, "loss": stat.item() / n_total.item(), "lr": scheduler.get_last_lr()[0],
                "items": int(n_total.item()), "grad_norm": grad_norm, "elapsed_s": round(time.time() - t0, 3), **extra}
        if (step + 1) % log_every == 0 or step + 1 == total:
            run.log(last)
            if progress and rank == 0:
                print(f"step {step + 1}/{total} loss {last['loss']:.4f} lr {last['lr']:.2e}", file=sys.stderr, flush=True)
        if evaluate is not None and cfg.get("eval_every") and (step + 1) % int(cfg["eval_every"]) == 0:
            run.log({"step": step + 1, **evaluate(unwrap(model))})
            model.train()
        if (every and (step + 1) % every == 0) or step + 1 == total:
            run.save(step + 1, model, optimizer, scheduler, keep=int(cfg.get("keep_checkpoints") or 2),
                     data={"micro_batches_consumed": (step + 1) * per_step, "epoch": (step + 1) // steps_per_epoch,
                           "seed": int(cfg["seed"])})
        if kill_at and step + 1 == kill_at:
            os.kill(os.getpid(), 9)
    result = {"run": str(run.path), "steps": total, "resumed_from": start, "last": last}
    if evaluate is not None:
        result["eval"] = evaluate(unwrap(model))
        run.log({"step": total, **result["eval"]})
    return result
