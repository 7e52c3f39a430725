"""Export a store version to the formats its consumers read.

A registry maps ``--format`` names to functions ``(version, out_dir) -> dict``; the training
package registers LLaMA-Factory, TRL and Megatron exporters here. Every exporter streams batch
by batch, so an export never needs the dataset in memory.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import CumedError
from .store import DatasetVersion

EXPORTERS: dict[str, Callable[[DatasetVersion, Path], dict]] = {}


def exporter(name: str):
    def register(fn):
        EXPORTERS[name] = fn
        return fn

    return register


@exporter("jsonl")
def export_jsonl(dv: DatasetVersion, out: Path) -> dict:
    """UTF-8 JSON Lines, no ASCII escaping (Chinese stays readable)."""
    path = out / f"{dv.name}-v{dv.version}.jsonl"
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for batch in dv.iter_batches():
            for row in batch.to_pylist():
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
    return {"files": [str(path)], "rows": n}


@exporter("parquet")
def export_parquet(dv: DatasetVersion, out: Path) -> dict:
    """The version's own Parquet files, byte-identical (their sha256 stays in the manifest)."""
    files = []
    for f in dv.files("data"):
        dst = out / f.name
        shutil.copyfile(f, dst)
        files.append(str(dst))
    return {"files": files, "rows": dv.rows}


@exporter("csv")
def export_csv(dv: DatasetVersion, out: Path) -> dict:
    """Flat kinds only (documents, preferences); nested columns have no CSV form."""
    if dv.kind not in ("documents", "preferences"):
        raise CumedError(f"csv export needs a flat dataset; {dv.ref} is {dv.kind}: use --format jsonl or parquet")
    path = out / f"{dv.name}-v{dv.version}.csv"
    n = 0
    writer = None
    with open(path, "wb") as f:
        for batch in dv.iter_batches():
            if writer is None:
                writer = pacsv.CSVWriter(f, batch.schema)
            writer.write_batch(batch)
            n += batch.num_rows
        if writer is not None:
            writer.close()
    return {"files": [str(path)], "rows": n}


def export(dv: DatasetVersion, fmt: str, out: str | Path) -> dict:
    _load_plugins()
    if fmt not in EXPORTERS:
        raise CumedError(f"unknown export format {fmt!r}; use one of {', '.join(sorted(EXPORTERS))}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = EXPORTERS[fmt](dv, out)
    return {"ref": dv.ref, "format": fmt, "out": str(out), **result}


def _load_plugins() -> None:
    """Exporters that live in other packages register themselves on import."""
    for mod in ("training.exports",):
        try:
            __import__(mod)
        except ImportError:
            pass


__all__ = ["EXPORTERS", "export", "exporter", "pq"]
