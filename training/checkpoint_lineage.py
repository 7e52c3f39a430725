"""``lineage.json`` in every checkpoint folder: what the weights were trained from, and on what.

A dataset's manifest says which raw files and versions made it; this file says which versions
(by content hash), which parent checkpoint (by sha256), which tokenizer, code, config, engine
and hardware made a checkpoint, so ``cumed lineage`` can walk from an RS checkpoint back to the
raw files. The contract (keys, hashes) is in docs/design.md, "Checkpoint lineage"; the reader is
``cumed.provenance``, which parses it as plain JSON.
"""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path

from cumed import __version__, atomic
from cumed.errors import CumedError
from cumed.hashing import CHECKPOINT_LINEAGE, checkpoint_sha256
from cumed.lineage import code_fingerprint

__all__ = ["ENGINES", "LINEAGE_FILE", "checkpoint_sha256", "write_lineage"]

LINEAGE_FILE = CHECKPOINT_LINEAGE
SCHEMA = 1
ENGINES = ("cumed", "llamafactory", "megatron")


def write_lineage(folder: str | Path, *, stage: str, engine: str, datasets: dict, parent, tokenizer, config: dict,
                  extra: dict | None = None) -> dict:
    """Write ``folder/lineage.json`` (atomically) and return it.

    ``datasets``: role -> a ``DatasetVersion`` or a record with ``ref``, ``kind``,
    ``content_hash`` and ``store`` (or the version's ``path``, from which the store follows).
    ``parent``: the checkpoint folder the stage started from (``None`` from scratch).
    ``tokenizer``: a tokenizer object, its folder, or ``{"path", "sha256"}``.
    ``extra``: stage keys (rejection sampling: the policy and reward checkpoints)."""
    if engine not in ENGINES:
        raise CumedError(f"unknown training engine {engine!r} for lineage.json; one of {', '.join(ENGINES)}")
    out = {
        "schema": SCHEMA,
        "stage": stage,
        "engine": engine,
        "datasets": {role: _dataset(d) for role, d in (datasets or {}).items()},
        "parent": _checkpoint(parent),
        "tokenizer": _tokenizer(tokenizer),
        "code_version": __version__,
        "code_sha256": code_fingerprint("cumed", "training"),
        "config": config,
        "hardware": hardware(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    atomic.write_json(Path(folder) / LINEAGE_FILE, out, default=str)
    return out


def _store_of(path: str) -> str:
    """The store root a version folder (``<root>/<name>/v<N>``) lives in: a path or an URL."""
    if "://" in path or path.startswith("s3:/"):
        url = path if "://" in path else path.replace(":/", "://", 1)  # Path() folds s3:// to s3:/
        return url.rstrip("/").rsplit("/", 2)[0]
    return str(Path(path).resolve().parent.parent)


def _dataset(d) -> dict:
    if isinstance(d, str):  # a bare ref (the RS prompts in datasets.json)
        return {"ref": d, "kind": None, "content_hash": None, "store": None}
    if not isinstance(d, dict):  # a DatasetVersion
        d = {"ref": d.ref, "kind": d.kind, "content_hash": d.content_hash, "path": str(d.path)}
    store = d.get("store") or (_store_of(str(d["path"])) if d.get("path") else None)
    return {"ref": d["ref"], "kind": d.get("kind"), "content_hash": d.get("content_hash"), "store": store,
            **{k: v for k, v in d.items() if k not in ("ref", "kind", "content_hash", "store", "path")}}


def _checkpoint(parent) -> dict | None:
    if parent is None:
        return None
    if isinstance(parent, dict):
        return parent
    path = Path(parent)
    try:
        sha = checkpoint_sha256(path)
    except (CumedError, OSError):  # a hub name or a folder without weights: named, not hashed
        return {"path": str(parent), "sha256": None}
    return {"path": str(path.resolve()), "sha256": sha}


def _tokenizer(tok) -> dict | None:
    if tok is None or isinstance(tok, dict):
        return tok
    from training.tokenizer import load_tokenizer, tokenizer_hash

    if isinstance(tok, (str, os.PathLike)):
        path, tok = tok, load_tokenizer(tok)
    else:
        path = getattr(tok, "name_or_path", None)
    p = Path(path) if path else None
    return {"path": str(p.resolve()) if p is not None and p.exists() else path, "sha256": tokenizer_hash(tok)}


def hardware() -> dict:
    """Where the weights were computed: enough to explain a numeric difference between two runs."""
    import torch

    from training.distributed import dist_info

    cuda = torch.cuda.is_available()
    return {"torch": torch.__version__, "cuda": torch.version.cuda if cuda else None,
            "device": "gpu" if cuda else "cpu", "device_count": torch.cuda.device_count() if cuda else 0,
            "device_name": torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine(),
            "world_size": dist_info()[1], "cpu_count": os.cpu_count(),
            "python": platform.python_version()}
