"""Load ``name@version`` for a training stage and tokenise it once, with a cache.

- ``load_version(store, ref, stage)`` checks that the version's kind fits the stage
  (pretrain: documents; sft and rs: conversations; rm: preferences) and says which kind it found.
- ``split_rows(dv, split)`` returns the rows of one split, or an error naming the splits present.
- ``cached_table(...)`` keys a tokenised table by (dataset content hash, tokenizer hash,
  settings) under ``.cache/tokenized/<key>.parquet``: a second run, or a resumed one, reads it
  instead of tokenising again, and any change to data, tokenizer or settings makes a new key.

It deliberately does not shuffle or batch: the recipes do that, from a seed, so a resumed run
sees the same order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cumed import atomic
from cumed.errors import CumedError
from cumed.hashing import sha256_text
from cumed.store import DatasetVersion, Store

STAGE_KINDS = {"pretrain": "documents", "sft": "conversations", "rm": "preferences", "rs": "conversations"}


def default_cache_dir() -> Path:
    """``$CUMED_CACHE/tokenized``, default ``.cache/tokenized`` (git-ignored)."""
    return Path(os.environ.get("CUMED_CACHE", ".cache")) / "tokenized"


def load_version(store: Store | str, ref: str, stage: str) -> DatasetVersion:
    st = store if isinstance(store, Store) else Store(store, create=False)
    dv = st.get(ref)
    want = STAGE_KINDS[stage]
    if dv.kind != want:
        hint = {"documents": "a pretraining corpus (cumed build datasets/cumed-pretrain.yaml)",
                "conversations": "an SFT version (cumed build datasets/cumed-sft.yaml)",
                "preferences": "a preferences version (cumed rank pull ... makes one)"}[want]
        raise CumedError(f"dataset of the wrong kind for the stage: {stage} needs {want}, {dv.ref} is {dv.kind}; "
                         f"pass {hint}")
    return dv


def _has_split(dv: DatasetVersion) -> bool:
    files = dv.files("data")
    return bool(files) and "split" in pq.read_schema(files[0]).names


def split_table(dv: DatasetVersion, split: str | None, columns: list[str] | None = None) -> pa.Table:
    """Rows of one split (``None``: every row; documents have no split)."""
    if split is None:
        return dv.to_arrow(columns=columns)
    if not _has_split(dv):
        raise CumedError(f"missing split {split!r}: {dv.ref} ({dv.kind}) has no split column; use split: null")
    table = dv.to_arrow(columns=None if columns is None else list(dict.fromkeys([*columns, "split"])))
    part = table.filter(pc.equal(table.column("split"), split))
    if part.num_rows == 0:
        present = sorted(set(table.column("split").to_pylist()) - {None})
        raise CumedError(f"missing split {split!r} in {dv.ref}: it has {', '.join(present) or 'no rows'}; "
                         f"rebuild with that split or change the stage's split setting")
    return part.select(columns) if columns else part


def cache_key(dv: DatasetVersion, tok_hash: str, settings: dict) -> str:
    blob = json.dumps({"content_hash": dv.content_hash, "tokenizer": tok_hash, "settings": settings}, sort_keys=True)
    return sha256_text(blob)[:24]


def cached_table(dv: DatasetVersion, tok_hash: str, settings: dict, build: Callable[[], pa.Table],
                 cache_dir: str | Path | None = None) -> tuple[pa.Table, dict]:
    """``build()``'s table, read from the cache when the same key was built before.

    Returns the table and ``{"key", "path", "hit"}``. Writes go through ``cumed.atomic`` (a
    temporary name, then renamed), so a killed run never leaves a half file under the key.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = cache_key(dv, tok_hash, settings)
    path = folder / key / "data.parquet"
    if path.is_file():
        return pq.read_table(path), {"key": key, "path": str(path), "hit": True}
    table = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    # key.json before the data: whoever finds the data under the key finds what it was built from
    atomic.write_text(path.parent / "key.json", json.dumps({"dataset": dv.ref, "content_hash": dv.content_hash,
                                                            "tokenizer": tok_hash, "settings": settings}, indent=2))
    with atomic.replacing(path, "wb") as f:
        pq.write_table(table, f)
    return table, {"key": key, "path": str(path), "hit": False}
