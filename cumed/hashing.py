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


def object_etag(info: dict) -> str | None:
    """The ETag in an fsspec ``info`` dict (s3fs spells it ``ETag``, other stores ``etag``), if any."""
    return info.get("ETag") or info.get("etag")


def size_sha256_url(url: str) -> tuple[int, str]:
    """(bytes, sha256) of an object on object storage (any fsspec URL), streamed.

    Remembered per URL with the object's ETag and size (``$CUMED_CACHE/url-sha256/``): a build
    hashes every input before its first stage (the work folder key, the lineage), and the tasks
    then read the files again, so a re-run on the same bucket files (resumed, or repeated) used
    to download the whole corpus once more just to hash it. A changed object has a new ETag and
    is hashed again; a store that gives no ETag is hashed every time."""
    import json

    import fsspec

    from cumed.cache import cache_root

    fs, path = fsspec.core.url_to_fs(url)
    info = fs.info(path)
    etag = object_etag(info)
    memo = cache_root() / "url-sha256" / f"{hashlib.sha256(url.encode()).hexdigest()[:32]}.json"
    stamp = {"url": url, "etag": str(etag), "size": info.get("size")}
    if etag:
        try:
            seen = json.loads(memo.read_text())
            if {k: seen.get(k) for k in stamp} == stamp and len(seen.get("sha256", "")) == 64:
                return int(stamp["size"]), seen["sha256"]
        except (OSError, ValueError):
            pass
    with fs.open(path, "rb") as fh:
        size, digest = fh.size, sha256_stream(fh)
    if etag:
        from cumed.atomic import write_text

        memo.parent.mkdir(parents=True, exist_ok=True)
        write_text(memo, json.dumps({**stamp, "sha256": digest}))
    return size, digest
