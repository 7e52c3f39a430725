"""``cumed train plan``: will a model train on these GPUs, and with which setting? (``training/memory_plan.py``)

Its own module beside ``train_cmd`` (which it extends with one command); nothing heavy is imported:
the plan is arithmetic on a config, so it answers on a laptop without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from cumed.errors import CumedError
from cumed.cli.app import JsonOpt, emit, out
from cumed.cli.train_cmd import train_app

STAGES = {"pretrain": "causal", "sft": "causal", "rm": "reward", "rs": "causal"}


@train_app.command("plan")
def plan_cmd(model: str = typer.Option(..., "--model", help="A size (7b, 13b, ziya-13b, 70b), a Hugging Face folder or "
                                                               "config.json, a stage YAML, or tiny (the preset's tiny LLaMA)."),
             gpus: int = typer.Option(1, "--gpus", help="GPUs (data-parallel ranks)."),
             gpu_memory: Optional[float] = typer.Option(None, "--gpu-memory", help="GiB per GPU (default: the config's "
                                                                                   "gpu_memory_gb, else this machine's GPU)."),
             seq_len: Optional[int] = typer.Option(None, "--seq-len", help="Tokens per row (default: the stage's block_size)."),
             micro_batch: Optional[int] = typer.Option(None, "--micro-batch", help="Rows per forward pass per GPU "
                                                                                   "(default: the stage's micro_batch_size)."),
             stage: str = typer.Option("pretrain", "--stage", help="pretrain, sft, rm (reward head, pairs) or rs: its "
                                                                  "preset gives the defaults."),
             precision: Optional[str] = typer.Option(None, "--precision", help="bf16 or fp32 (default: the stage's)."),
             as_json: bool = JsonOpt):
    """Per-GPU memory (params, grads, AdamW states, activations) under DDP and FSDP, with and without
    activation checkpointing and CPU offload, and the cheapest setting that fits.

    Example: cumed train plan --model ziya-13b --gpus 8 --gpu-memory 80 --seq-len 4096
    """
    from training.config import load_config
    from training import memory_plan as mp

    if stage not in STAGES:
        raise CumedError(f"--stage {stage} is not a training stage; use one of {', '.join(STAGES)}")
    head = STAGES[stage]
    is_yaml = Path(model).suffix in (".yaml", ".yml")
    cfg = load_config(stage, model if is_yaml else None)
    if is_yaml:
        source = cfg.get("model")
    else:
        source = None if model.lower() == "tiny" else model
    shape = mp.resolve_shape(source, cfg, int(cfg.get("tokenizer_vocab_size") or 32000))
    memory = gpu_memory if gpu_memory is not None else cfg.get("gpu_memory_gb")
    if memory is None:
        memory = _local_gpu_gb()
    if memory is None or memory <= 0:
        raise CumedError("give --gpu-memory GB (per GPU): no gpu_memory_gb in the config and no CUDA device here")
    rows = micro_batch * (2 if head == "reward" else 1) if micro_batch else mp.micro_batch_rows(cfg, head)
    p = mp.plan(shape, world=max(1, gpus), gpu_memory_gb=float(memory), seq=int(seq_len or cfg["block_size"]), rows=rows,
                headroom=float(cfg.get("memory_headroom") or mp.HEADROOM), precision=str(precision or cfg.get("precision") or "bf16"),
                attn=str(cfg.get("attn_implementation") or "sdpa"), dropout=float(cfg.get("dropout") or 0.0), head=head)
    res = p.as_dict()
    res["configured"] = mp.setting_of(cfg).label if is_yaml else None
    if p.recommended:
        res["recommended_config"] = next(s for s in mp.LADDER if s.label == p.recommended).config_keys()

    def human():
        size = f"{p.parameters / 1e9:.2f}B" if p.parameters >= 1e9 else f"{p.parameters / 1e6:.1f}M"
        out.print(f"[bold]{p.model}[/] ({size} parameters, {head} head) on {p.gpus} x {p.gpu_memory_gb:g} GiB "
                  f"({p.usable_gb:.1f} usable at {p.headroom:g}); {p.micro_batch_rows} rows x {p.seq_len} tokens per GPU, "
                  f"{p.precision}, {p.attn}")
        t = Table("setting", "params", "grads", "optimizer", "activations", "comm", "step temp", "overhead", "total",
                  "host", "fits", title="GiB per GPU")
        for e in p.estimates:
            if not e.supported:
                t.add_row(e.setting, *["-"] * 9, "n/a*")
                continue
            t.add_row(e.setting, *(_gib(v) for v in (e.params, e.grads, e.optimizer, e.activations, e.comm, e.step_temp,
                                                          e.overhead, e.total, e.host)),
                      "[green]yes[/]" if e.fits else "[red]no[/]")
        out.print(t)
        out.print(f"* {next(e.note for e in p.estimates if not e.supported)}")
        if res["configured"]:
            c = p.get(res["configured"])
            out.print(f"configured ({res['configured']}): {'fits' if c.fits else 'does not fit'} ({c.total:.1f} GiB)")
        if p.recommended:
            out.print(f"[bold green]recommended[/]: {p.recommended} ({res['recommended_config']})")
        else:
            out.print("[bold red]nothing fits[/]: more GPUs, a shorter --seq-len or a smaller --micro-batch")

    emit(res, as_json, human)


def _gib(v: float) -> str:
    return f"{v:.1f}" if v >= 1 or v == 0 else f"{v:.3g}"


def _local_gpu_gb() -> float | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory / 2 ** 30
