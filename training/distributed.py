"""Data-parallel training across processes: joining the group ``torchrun`` describes, and this process's place in it.

One process per device; ``torchrun`` sets RANK/WORLD_SIZE and the rendezvous address. The backend
follows the hardware: nccl on GPU, gloo on CPU (the test's two-process run). Without ``torchrun``
every function here is a no-op answer for a single process (rank 0 of 1), so the recipes call them
unconditionally.
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
        torch.distributed.init_process_group(backend)
    return dist_info()


def unwrap(model):
    """The model inside a ``DistributedDataParallel`` wrapper (or the model itself): what is saved and evaluated."""
    return model.module if hasattr(model, "module") else model
