"""The one sha256 helper: every file hash in manifests, lineage and artifacts comes from here."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cumed.errors import CumedError


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB chunks (bounded memory on multi-GB shards)."""
    with open(path, "rb") as f:
        return sha256_stream(f, chunk)


def sha256_stream(f, chunk: int = 1 << 22) -> str:
    """Hex sha256 of what a binary file object reads to its end (an object on S3 through fsspec:
    the same hash as the local copy's, streamed, never held whole)."""
    h = hashlib.sha256()
    while block := f.read(chunk):
        h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# What a checkpoint folder's hash covers: weights and the JSON configs beside them (model,
# generation, tokenizer). Not ``lineage.json``: it is written after the weights and describes
# them, so writing (or rewriting) it never changes the sha256 a child checkpoint recorded.
CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".json")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
CHECKPOINT_LINEAGE = "lineage.json"


def checkpoint_sha256(folder: str | os.PathLike) -> str:
    """One sha256 over a checkpoint folder: (relative path, file sha256) of weights and configs.

    Here, not in ``training``, so that ``cumed lineage`` can recheck a checkpoint without the
    training stack (docs/design.md, "Checkpoint lineage")."""
    folder = Path(folder)
    # A trainer's output folder (LLaMA-Factory, HF Trainer) also holds intermediate checkpoint-N/
    # folders with optimizer states: not the model this folder stands for, and gigabytes to read.
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES and p.relative_to(folder).as_posix() != CHECKPOINT_LINEAGE
                   and not any(part.startswith("checkpoint-") for part in p.relative_to(folder).parts[:-1]))
    if not any(p.suffix in WEIGHT_SUFFIXES for p in files):
        raise CumedError(f"{folder} holds no weights (*.safetensors / *.bin); give a runs/<stage>-*/final folder")
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.relative_to(folder)}\x1f{sha256_file(p)}\n".encode())
    return h.hexdigest()
