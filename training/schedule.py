"""The learning-rate schedule: linear warm-up, then constant, linear or cosine decay to a floor.

The presets give it as ``schedule``, ``warmup_ratio`` / ``warmup_min_steps`` and ``min_lr_ratio``
(the paper's RM recipe: cosine to 10 %, 3 % warm-up); the loop turns it into a ``LambdaLR``
multiplier of the peak lr, whose state a checkpoint carries.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from cumed.errors import CumedError


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
