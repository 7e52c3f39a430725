"""Runs: one folder per training run, checkpoints that resume exactly, the shared optimisation loop.

A run lives in ``runs/<name>-<timestamp>/`` (git-ignored)::

    config.yaml          the merged config the run used (preset + file + command-line overrides)
    datasets.json        the dataset references, kinds and content hashes, the tokenizer hash
    metrics.jsonl        one JSON object per logged step / evaluation
    checkpoints/step-0000010/state.pt   model + optimizer + scheduler + RNG + data position
    final/               the model (and tokenizer) in Hugging Face format, for the next stage

``fit`` is the loop every stage shares: AdamW, a warm-up + decay schedule, gradient accumulation,
optional DDP (gloo on CPU, nccl on GPU; start with ``torchrun``), checkpoints every
``checkpoint_every`` steps, resume from the newest checkpoint of the run folder. Data order is a
pure function of (seed, epoch), so the data position is just the step number: a resumed run
draws the same micro-batches, and with the RNG state restored (dropout) it ends with the same
weights as a run that was never interrupted (tested on CPU, where kernels are deterministic).

Deliberately not here: mixed-precision scaling, FSDP/ZeRO, streaming datasets. The paper-scale
runs (13B) belong to Megatron-LM / LLaMA-Factory via the exports; this loop is for small models,
checks and the reference implementation of each stage.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import yaml

from cumed.errors import CumedError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
KILL_ENV = "CUMED_TRAIN_KILL_AT"  # fault injection for the resume test: SIGKILL after this step's checkpoint


# --------------------------------------------------------------------------- config


def load_config(stage: str, path: str | Path | None = None, **overrides) -> dict:
    """The stage's preset (``training/configs/<stage>.yaml``), then ``path``, then non-None overrides."""
    cfg = yaml.safe_load((CONFIG_DIR / f"{stage}.yaml").read_text(encoding="utf-8")) or {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise CumedError(f"config {path} not found; presets are in {CONFIG_DIR} (pretrain, sft, rm, rs .yaml)")
        extra = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        unknown = sorted(set(extra) - set(cfg))
        if unknown:
            raise CumedError(f"unknown config key(s) {', '.join(unknown)} in {path}; known keys: {', '.join(sorted(cfg))}")
        cfg.update(extra)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def cap_steps(cfg: dict, max_steps: int | None) -> dict:
    """Record the command line's ``--max-steps`` in the run's config, so a resumed run stops there too."""
    if max_steps:
        cfg["max_steps_cap"] = int(max_steps)
    return cfg


# --------------------------------------------------------------------------- seeds and RNG


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- distributed


def dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_distributed() -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes (env RANK/WORLD_SIZE); no-op otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return dist_info()


# --------------------------------------------------------------------------- the run folder


def open_run(stage: str, dv, config=None, max_steps: int | None = None, runs_dir=None, resume=None,
             extra_datasets: dict | None = None, **overrides) -> tuple["Run", dict]:
    """The run to train in, and its config: ``resume`` continues a run folder with the config it
    saved; otherwise the stage's preset with ``config``/``overrides`` (steps capped at
    ``max_steps``) starts a new run that records ``dv`` (and ``extra_datasets``) as its data."""
    if resume:
        run = Run.resume(resume)
        return run, run.config
    cfg = cap_steps(load_config(stage, config, **overrides), max_steps)
    run = Run.start(stage, cfg, {"train": dataset_record(dv), **(extra_datasets or {})}, runs_dir or cfg["runs_dir"])
    return run, cfg


class Run:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rank, self.world = dist_info()

    @classmethod
    def start(cls, name: str, config: dict, datasets: dict, root: str | Path = "runs") -> "Run":
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
        rank, world = dist_info()
        if world > 1:  # every rank must agree on the folder
            box = [stamp]
            torch.distributed.broadcast_object_list(box, src=0)
            stamp = box[0]
        run = cls(Path(root) / f"{name}-{stamp}")
        if run.rank == 0:
            (run.path / "checkpoints").mkdir(parents=True, exist_ok=True)
            (run.path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
            (run.path / "datasets.json").write_text(json.dumps(datasets, indent=2, ensure_ascii=False) + "\n")
        run.barrier()
        return run

    @classmethod
    def resume(cls, path: str | Path) -> "Run":
        run = cls(path)
        if not (run.path / "config.yaml").is_file():
            raise CumedError(f"{path} is not a run folder (no config.yaml); give a runs/<name>-<timestamp> folder")
        return run

    @property
    def config(self) -> dict:
        return yaml.safe_load((self.path / "config.yaml").read_text(encoding="utf-8"))

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def log(self, record: dict) -> None:
        if self.rank == 0:
            with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")

    def metrics(self) -> list[dict]:
        p = self.path / "metrics.jsonl"
        return [json.loads(line) for line in p.read_text().splitlines()] if p.is_file() else []

    # ---- checkpoints

    def checkpoints(self) -> list[Path]:
        return sorted((self.path / "checkpoints").glob("step-*/state.pt"))

    def save(self, step: int, model, optimizer, scheduler, keep: int = 2, data: dict | None = None) -> None:
        if self.rank == 0:
            state = {"step": step, "data": data or {}, "model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "rng": rng_state()}
            final = self.path / "checkpoints" / f"step-{step:07d}"
            tmp = final.with_name(f".tmp-{final.name}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            torch.save(state, tmp / "state.pt")
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)  # a kill mid-save leaves only .tmp-*, never a half checkpoint
            for old in self.checkpoints()[:-keep] if keep else []:
                shutil.rmtree(old.parent, ignore_errors=True)
        self.barrier()

    def load_latest(self, model, optimizer, scheduler) -> int:
        """Restore the newest checkpoint; return its step (0 when there is none)."""
        ckpts = self.checkpoints()
        if not ckpts:
            return 0
        state = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
        _unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        return int(state["step"])

    def save_final(self, model, tokenizer=None) -> Path:
        out = self.path / "final"
        if self.rank == 0:
            _unwrap(model).save_pretrained(str(out))
            if tokenizer is not None:
                tokenizer.save_pretrained(str(out))
        self.barrier()
        return out


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


# --------------------------------------------------------------------------- schedule


def lr_lambda(schedule: str, warmup: int, total: int, min_ratio: float = 0.0) -> Callable[[int], float]:
    """Multiplier of the peak lr at a step: linear warm-up, then constant, linear or cosine decay."""
    if schedule not in ("constant", "linear", "cosine"):
        raise CumedError(f"unknown schedule {schedule!r}; use constant, linear or cosine")

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        decay = 1.0 - t if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * t))
        return min_ratio + (1.0 - min_ratio) * decay

    return f


def warmup_steps(cfg: dict, total: int) -> int:
    """``warmup_ratio`` of the steps, at least ``warmup_min_steps`` (the RM preset: 3 %, >= 5)."""
    return min(total, max(int(cfg.get("warmup_min_steps") or 0), math.ceil(float(cfg.get("warmup_ratio") or 0) * total)))


def micro_batch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


# --------------------------------------------------------------------------- the loop


def fit(run: Run, model, batches: list[dict], loss_fn, cfg: dict, max_steps: int | None = None,
        evaluate: Callable[[object], dict] | None = None, progress: bool = False) -> dict:
    """Train ``model`` on micro-``batches`` (each with ``n_items``: tokens or pairs it averages over).

    ``loss_fn(model, batch) -> (summed loss tensor, metrics dict)``. One optimizer step takes
    ``grad_accum`` micro-batches on every rank; the loss is the sum over the step's items divided by
    their total count across ranks, so the gradient does not depend on how the items were split.
    """
    if not batches:
        raise CumedError("no training batches: the dataset split is empty after tokenisation")
    rank, world = dist_info()
    accum = int(cfg.get("grad_accum") or 0) or max(1, int(cfg.get("batch_size") or 1) // (int(cfg.get("micro_batch_size") or 1) * world))
    per_step = accum * world
    steps_per_epoch = max(1, len(batches) // per_step)
    total = int(cfg.get("max_steps") or 0) or steps_per_epoch * int(cfg.get("epochs") or 1)
    cap = max_steps or cfg.get("max_steps_cap")
    if cap:
        total = min(total, int(cap))

    decay, no_decay = [], []
    for n, p in _unwrap(model).named_parameters():
        (no_decay if p.ndim < 2 or "norm" in n else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": float(cfg["weight_decay"])}, {"params": no_decay, "weight_decay": 0.0}],
        lr=float(cfg["lr"]), betas=tuple(float(b) for b in cfg.get("betas", (0.9, 0.999))), eps=float(cfg.get("eps", 1e-8)))
    warm = warmup_steps(cfg, total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(cfg.get("schedule", "constant"), warm, total, float(cfg.get("min_lr_ratio") or 0.0)))
    start = run.load_latest(model, optimizer, scheduler)
    device = torch.device(f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu")
    model.to(device)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and cfg.get("precision") == "bf16"
                else _null())
    if world > 1 and not isinstance(model, torch.nn.parallel.DistributedDataParallel):
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
            ctx = model.no_sync() if (not sync and hasattr(model, "no_sync")) else _null()
            b = {key: (v.to(device) if torch.is_tensor(v) else v) for key, v in b.items()}
            with ctx, autocast:
                loss, m = loss_fn(model, b)
                (loss * world / n_total).backward()
            loss_sum += float(loss.detach())
            for key, v in m.items():
                extra[key] = extra.get(key, 0.0) + float(v)
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
            run.log({"step": step + 1, **evaluate(_unwrap(model))})
            model.train()
        if (every and (step + 1) % every == 0) or step + 1 == total:
            run.save(step + 1, model, optimizer, scheduler, keep=int(cfg.get("keep_checkpoints") or 2),
                     data={"micro_batches_consumed": (step + 1) * per_step, "epoch": (step + 1) // steps_per_epoch,
                           "seed": int(cfg["seed"])})
        if kill_at and step + 1 == kill_at:
            os.kill(os.getpid(), 9)
    result = {"run": str(run.path), "steps": total, "resumed_from": start, "last": last}
    if evaluate is not None:
        result["eval"] = evaluate(_unwrap(model))
        run.log({"step": total, **result["eval"]})
    return result


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


# --------------------------------------------------------------------------- models


def build_model(cfg: dict, tokenizer, head: str = "causal"):
    """``model:`` a Hugging Face folder, or null for a tiny LLaMA from the ``tiny_*`` values.

    ``head``: ``causal`` (pretrain, SFT, policy) or ``reward`` (one scalar per sequence, read at the
    last non-pad token).
    """
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, LlamaConfig

    set_seed(int(cfg["seed"]))
    dropout = float(cfg.get("dropout") or 0.0)
    if cfg.get("model"):
        path = Path(cfg["model"])
        if not (path / "config.json").is_file():
            raise CumedError(f"model folder {path} has no config.json; give a Hugging Face checkpoint folder or model: null")
        kw = {"attention_dropout": dropout, "pad_token_id": tokenizer.pad_token_id}
        if head == "reward":
            return AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1, **kw)
        return AutoModelForCausalLM.from_pretrained(str(path), **kw)
    conf = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=int(cfg["tiny_hidden_size"]), num_hidden_layers=int(cfg["tiny_layers"]),
        num_attention_heads=int(cfg["tiny_heads"]), num_key_value_heads=int(cfg["tiny_kv_heads"]),
        intermediate_size=int(cfg["tiny_intermediate_size"]), max_position_embeddings=max(int(cfg["block_size"]), 4096),
        attention_dropout=dropout, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, num_labels=1, tie_word_embeddings=False,
    )
    conf._attn_implementation = cfg.get("attn_implementation") or "sdpa"
    if head == "reward":
        from transformers import LlamaForSequenceClassification

        return LlamaForSequenceClassification(conf)
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(conf)


def dataset_record(dv, tokenizer_hash: str | None = None) -> dict:
    return {"ref": dv.ref, "kind": dv.kind, "rows": dv.rows, "content_hash": dv.content_hash,
            "path": str(dv.path), **({"tokenizer_sha256": tokenizer_hash} if tokenizer_hash else {})}
