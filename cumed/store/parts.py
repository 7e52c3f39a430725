"""Writing a version's Parquet parts: fixed row-group and file sizes, so identical rows give
identical bytes and sha256 whoever publishes them."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cumed.errors import CumedError
from cumed.hashing import sha256_file
from cumed.schemas import conform

# Fixed sizes make the bytes (and so the sha256) of a version depend only on its rows.
ROW_GROUP_ROWS = 8192
FILE_ROWS = 262_144
COMPRESSION = "zstd"



def _as_batches(rows) -> Iterator[pa.RecordBatch]:
    if rows is None:
        return
    if isinstance(rows, pa.Table):
        yield from rows.to_batches()
    elif isinstance(rows, pa.RecordBatch):
        yield rows
    elif isinstance(rows, (str, Path)):
        yield from pq.ParquetFile(rows).iter_batches() if Path(rows).is_file() else _dir_batches(Path(rows))
    else:
        for item in rows:
            yield from _as_batches(item)


def _dir_batches(folder: Path) -> Iterator[pa.RecordBatch]:
    for f in sorted(folder.rglob("*.parquet")):
        yield from pq.ParquetFile(f).iter_batches()


@dataclass
class _Part:
    path: str
    rows: int
    bytes: int
    sha256: str


def _seal(folder: Path, name: str, rows: int) -> _Part:
    path = folder / name
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    return _Part(name, rows, path.stat().st_size, sha256_file(path))


class _PartWriter:
    """Writes conformed batches into fixed-size row groups and files, hashing as it goes."""

    def __init__(self, folder: Path, prefix: str, kind: str, removed: bool, where: str):
        self.folder, self.prefix = folder, prefix
        self.kind, self.removed, self.where = kind, removed, where
        self.parts: list[_Part] = []
        self.schema: pa.Schema | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._file_rows = 0
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._done: list = []

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if table.num_rows == 0 and self.schema is not None:
            return
        table = conform(table, self.kind, self.removed, self.where)
        if self.schema is None:
            self.schema = table.schema
        elif not table.schema.equals(self.schema):
            try:
                table = table.select(self.schema.names).cast(self.schema)
            except (KeyError, pa.ArrowInvalid, ValueError) as e:
                raise CumedError(
                    f"rows{f' in {self.where}' if self.where else ''} change schema mid-stream "
                    f"({table.schema} vs {self.schema}); publish one schema per version"
                ) from e
        self._pending.append(table)
        self._pending_rows += table.num_rows
        while self._pending_rows >= ROW_GROUP_ROWS:
            self._flush_group(ROW_GROUP_ROWS)

    def _flush_group(self, n: int) -> None:
        table = pa.concat_tables(self._pending)
        group, rest = table.slice(0, n), table.slice(n)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows
        if self._writer is None:
            name = f"{self.prefix}/part-{len(self._done):05d}.parquet"
            # A native file keeps the GIL free for compression; the sha256 is computed from the
            # page cache right after the file is closed (faster than hashing through Python writes).
            self._writer = pq.ParquetWriter(
                str(self.folder / name), self.schema, compression=COMPRESSION, write_statistics=True, store_schema=True
            )
            self._name = name
        self._writer.write_table(group, row_group_size=n)
        self._file_rows += group.num_rows
        if self._file_rows >= FILE_ROWS:
            self._close_file()

    def _close_file(self) -> None:
        self._writer.close()
        # fsync + sha256 release the GIL: overlap them with writing the next file.
        self._done.append(self._pool.submit(_seal, self.folder, self._name, self._file_rows))
        self._writer, self._file_rows = None, 0

    def finish(self) -> list[_Part]:
        if self._pending_rows:
            self._flush_group(self._pending_rows)
        if self._writer is not None:
            self._close_file()
        self.parts = [f.result() for f in self._done]
        self._pool.shutdown()
        return self.parts

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)



def iter_table_batches(rows: Iterable) -> Iterator[pa.RecordBatch]:
    """Public helper: normalise tables/batches/iterables into record batches."""
    return _as_batches(rows)
