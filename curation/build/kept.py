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
    def of_build(cls, work: Path, final: str, tasks: int) -> KeptRows:
        """The kept rows of a build's local work folder (or view): ``final`` is ``filtered`` (no
        dedup: every row, in file order) or ``kept``: the ``filtered/`` files in stage C's order
        over its ``tasks``, less the positions stage C wrote into ``kept/``."""
        if final == "filtered":
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

    def batches(self, columns: list[str] | None = None, rows: int = READ_ROWS) -> Iterator[pa.Table]:
        """The kept rows as one-chunk tables of ``rows`` rows (a group's last may hold fewer).

        Each table is read as one window of its file whose kept rows are exactly the ``rows`` it
        needs, then filtered: one copy of the texts besides the read (filtering fixed-size
        batches and joining the pieces into ``rows`` made two, +0.8 s to publish 1M records).
        Only a table that spans two files of a group is joined from pieces."""
        for group in self.groups:
            pending, n = [], 0
            for f in group:
                for t in self._windows(f, columns, rows - n, rows):
                    if not pending and t.num_rows == rows:
                        yield t
                        continue
                    pending.append(t)
                    n += t.num_rows
                    if n == rows:
                        yield pa.concat_tables(pending).combine_chunks()
                        pending, n = [], 0
            if n:
                yield pa.concat_tables(pending).combine_chunks()

    def _windows(self, f: Path, columns, first: int, rows: int) -> Iterator[pa.Table]:
        """``f``'s kept rows as tables of ``first``, then ``rows`` rows (the last: the rest), each
        read as one batch of the rows it spans and filtered."""
        pf = pq.ParquetFile(f)
        meta = pf.metadata
        starts = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
        n = int(starts[-1])
        gone = self.removed.get(f.name, np.zeros(0, np.int64))
        if len(gone) and gone[-1] >= n:
            raise CumedError(f"{f}: stage C removed row {int(gone[-1])} of a file of {n} rows; the work folder is "
                             "damaged, fix: delete it and build again")
        r0, want = 0, first
        while r0 < n:
            r1 = min(n, r0 + want)  # grow the window by the removed rows it holds, until it keeps ``want``
            while r1 < n and r1 - r0 - _count(gone, r0, r1) < want:
                r1 = min(n, r0 + want + _count(gone, r0, r1))
            g0 = int(np.searchsorted(starts, r0, side="right") - 1)
            batch = next(pf.iter_batches(batch_size=r1 - int(starts[g0]), row_groups=range(g0, meta.num_row_groups),
                                         columns=columns))
            t = pa.Table.from_batches([batch]).slice(r0 - int(starts[g0]), r1 - r0)
            lo, hi = np.searchsorted(gone, [r0, r1])
            if hi > lo:
                keep = np.ones(r1 - r0, bool)
                keep[gone[lo:hi] - r0] = False
                t = t.filter(pa.array(keep))
            if t.num_rows:
                yield t
            r0, want = r1, rows


def _count(sorted_rows: np.ndarray, lo: int, hi: int) -> int:
    """How many of ``sorted_rows`` lie in [lo, hi)."""
    a, b = np.searchsorted(sorted_rows, [lo, hi])
    return int(b - a)
