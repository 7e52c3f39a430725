"""Write a file so that readers see either the old content or the new, never half.

Every "write to a temp file, then rename" in cumed goes through here: the temp file sits beside
the target (so ``os.replace`` stays on one filesystem) and carries the pid (two writers never
share one). ``durable=True`` also fsyncs the file and its folder, so the new content survives a
power cut, not just a crash of this process: the default of the small-file writers below (state,
manifests, ledgers, cards: an fsync costs little there); ``replacing`` leaves it to the caller,
since a pipeline's large intermediate files are rebuilt by a re-run anyway.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: str | os.PathLike, mode: str = "w", *, durable: bool = False, **open_kw):
    """``with replacing(p) as f: f.write(...)``: ``p`` appears complete or not at all."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if "b" not in mode:
        open_kw.setdefault("encoding", "utf-8")
    try:
        with open(tmp, mode, **open_kw) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


def write_text(path: str | os.PathLike, text: str, *, durable: bool = True) -> None:
    with replacing(path, "w", durable=durable) as f:
        f.write(text)


def write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> None:
    with replacing(path, "wb", durable=durable) as f:
        f.write(data)


def write_json(path: str | os.PathLike, obj, *, durable: bool = True, indent: int | None = 1, **dump_kw) -> None:
    """UTF-8 JSON without ASCII escaping (Chinese stays readable), replaced atomically."""
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent, **dump_kw), durable=durable)
