"""Where cumed keeps what it can rebuild (the decontamination index, mirrored side files,
remembered hashes of remote inputs): ``$CUMED_CACHE``, default ``~/.cache/cumed``. Deleting it
costs time, never a result."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("CUMED_CACHE") or Path.home() / ".cache" / "cumed")
