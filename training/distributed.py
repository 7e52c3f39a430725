"""Data-parallel training across processes: joining the group ``torchrun`` describes, and this process's place in it.

One process per device; ``torchrun`` sets RANK/WORLD_SIZE/LOCAL_RANK and the rendezvous address.
The backend follows the hardware: nccl on GPU, gloo on CPU (the tests' two-process runs). Without
``torchrun`` every function here is a no-op answer for a single process (rank 0 of 1), so the
recipes call them unconditionally. FSDP needs a group even alone; ``ensure_process_group`` makes
a one-process one.
"""

from __future__ import annotations

import os

import torch


def dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_distributed() -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes (env RANK/WORLD_SIZE); no-op otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():  # one device per process: without this every rank computes on cuda:0
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group(backend)
    return dist_info()


def ensure_process_group() -> tuple[int, int]:
    """The group to shard over: ``torchrun``'s, or else a one-process group (rank 0 of 1, an in-memory
    store, no ports) so ``parallelism: fsdp`` also runs as a plain ``cumed train`` command."""
    init_distributed()
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend, store=torch.distributed.HashStore(), rank=0, world_size=1)
    return dist_info()


def is_sharded(model) -> bool:
    """Whether ``fully_shard`` sharded ``model`` (its parameters are DTensors; saving and loading differ)."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:
        return False
    return isinstance(model, FSDPModule)


def unwrap(model):
    """The model inside a ``DistributedDataParallel`` wrapper (or the model itself): what is saved and evaluated.

    ``fully_shard`` wraps nothing (it changes the model's class in place), so a sharded model is its own answer.
    """
    return model.module if hasattr(model, "module") else model
