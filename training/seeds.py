"""Seeds and random state: one seed for every generator a run draws from, and their state for checkpoints.

Python's ``random``, NumPy and torch (plus CUDA when present) each keep their own generator.
``set_seed`` seeds them all, so a seeded run is repeatable; ``rng_state``/``set_rng_state`` save
and restore them all, so a resumed run draws the same dropout masks as one never interrupted.
"""

from __future__ import annotations

import random

import numpy as np
import torch


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
