"""The rows a documents build keeps, read by the publishing driver: stage A's files (``filtered/``)
less the rows stage C removed as duplicates.

Stage C (``ApplyDuplicateDecisions(kept="positions")``) writes, per ``filtered/`` file that lost
rows, their positions (``kept/<same name>``, column ``row``), not the ~98 % of rows that stay: those
were copied, written and read back once more for nothing (1M short QA records: stage C 2.6 s).
Here each file is read a batch at a time and its removed positions dropped, in the order stage C's
kept files had: rank ``r`` of its ``tasks`` took the sorted files ``[r::tasks]``, and its output sorted
before rank ``r + 1``'s. The batches are those the driver read from a kept file too: each rank's rows
in tables of ``READ_ROWS``, one chunk each. That matters: the store's Parquet bytes depend on how its
input is chunked, not only on the rows (a row group written from two chunks pages differently), so
the same chunks give the same published bytes and content hash as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cumed.errors import CumedError

READ_ROWS = 65_536  # rows a batch: the driver holds one batch of texts, not a shard


class KeptRows:
    """``groups`` of local Parquet files (in publishing order) less the rows at ``removed[file.name]``;
    a group's rows are batched as one file's (stage C wrote one kept file per group)."""

    def __init__(self, groups: list[list[Path]], removed: dict[str, np.ndarray] | None = None):
        self.groups, self.removed = [list(g) for g in groups if g], removed or {}

    @classmethod
    def of_build(cls, work: Path, final: str, tasks: int | None = None) -> KeptRows:
        """The kept rows of a build's local work folder (or view): ``final`` is ``filtered`` (no
        dedup: every row, in file order) or ``kept``: the ``filtered/`` files in stage C's order
        over its ``tasks``, less the positions stage C wrote into ``kept/``."""
        if final == "filtered" or tasks is None:
            return cls([[f] for f in sorted((work / final).glob("*.parquet"))])
        files = sorted((work / "filtered").glob("*.parquet"))
        removed = {}
        for f in sorted((work / "kept").glob("*.parquet")):
            rows = pq.read_table(f, columns=["row"]).column("row").to_numpy()
            if len(rows) and (np.any(np.diff(rows) <= 0) or rows[0] < 0):
                raise CumedError(f"{f}: removed positions not strictly ascending; the work folder is damaged, "
                                 "fix: delete it and build again")
            removed[f.name] = rows
        unknown = set(removed) - {f.name for f in files}
        if unknown:
            raise CumedError(f"{work / 'kept'}: positions for files stage A did not write ({sorted(unknown)[:3]}); "
                             "the work folder is damaged, fix: delete it and build again")
        return cls([files[r::tasks] for r in range(tasks)], removed)

    def batches(self, columns: list[str] | None = None, rows: int = READ_ROWS, whole: bool = True) -> Iterator[pa.Table]:
        """The kept rows as one-chunk tables of ``rows`` rows (a group's last may hold fewer); with
        ``whole=False``, each batch read less its removed rows, as it comes (one copy fewer, for
        readers that only add up, such as the build's statistics)."""
        if not whole:
            for group in self.groups:
                for f in group:
                    yield from self.file_batches(f, columns, rows)
            return
        for group in self.groups:
            pending, n = [], 0
            for f in group:
                for t in self.file_batches(f, columns, rows):
                    pending.append(t)
                    n += t.num_rows
                    while n >= rows:
                        whole = pa.concat_tables(pending)
                        yield whole.slice(0, rows).combine_chunks()
                        rest = whole.slice(rows)
                        pending, n = ([rest] if rest.num_rows else []), rest.num_rows
            if n:
                yield pa.concat_tables(pending).combine_chunks()

    def file_batches(self, f: Path, columns: list[str] | None = None, rows: int = READ_ROWS) -> Iterator[pa.Table]:
        gone = self.removed.get(f.name)
        start = 0
        for batch in pq.ParquetFile(f).iter_batches(batch_size=rows, columns=columns):
            t = pa.Table.from_batches([batch])
            if gone is not None:
                lo, hi = np.searchsorted(gone, [start, start + t.num_rows])
                if hi > lo:
                    keep = np.ones(t.num_rows, bool)
                    keep[gone[lo:hi] - start] = False
                    t = t.filter(pa.array(keep))
            start += batch.num_rows
            if t.num_rows:
                yield t
        if gone is not None and len(gone) and gone[-1] >= start:
            raise CumedError(f"{f}: stage C removed row {int(gone[-1])} of a file of {start} rows; the work folder is "
                             "damaged, fix: delete it and build again")
