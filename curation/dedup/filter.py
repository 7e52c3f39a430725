"""Stage 3 of dedup: remove the documents that ``NearDupClusters`` decided are duplicates.

Loads the decisions (one row per removed document, so memory is proportional to the number of
duplicates, not to the corpus) and removes each listed document with the reason
``exact_duplicate: of <id>`` or ``near_duplicate: of <id> (jaccard 0.91)``, setting
``metadata["duplicate_of"]`` and ``metadata["similarity"]`` for the exclusion writer.
"""

from __future__ import annotations

import contextlib
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.typeshelper import StatHints

from curation.dedup.core import Decision
from curation.dedup.near import decision_files, read_decisions
from curation.metrics import add_counts
from curation.steps.base import CumedFilter
from curation.workfolder import folder, names, parquet_row_groups, parquet_writer, read_parquet, write_parquet


class DuplicateFilter(CumedFilter):
    name = "dedup"

    def __init__(self, decisions_folder: str | None = None, decisions: list[Decision] | None = None, exclusion_writer=None):
        super().__init__(exclusion_writer=exclusion_writer)
        if (decisions_folder is None) == (decisions is None):
            raise ValueError("DuplicateFilter needs exactly one of decisions_folder= (NearDupClusters output) or decisions=")
        self.decisions_folder = decisions_folder
        self._decisions = {d.id: d for d in decisions} if decisions is not None else None

    @property
    def decisions(self) -> dict[str, Decision]:
        if self._decisions is None:
            self._decisions = {d.id: d for d in read_decisions(self.decisions_folder)}
        return self._decisions

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        d = self.decisions.get(str(doc.id))
        if d is None:
            return True
        doc.metadata["duplicate_of"] = d.duplicate_of
        doc.metadata["similarity"] = d.similarity
        if d.kind == "exact":
            return False, f"exact_duplicate: of {d.duplicate_of}"
        return False, f"near_duplicate: of {d.duplicate_of} (jaccard {d.similarity:.2f})"


class ApplyDuplicateDecisions(PipelineStep):
    """Stage 3 over Parquet tables instead of documents: same output as
    ``ParquetReader(row_adapter) -> DuplicateFilter -> ParquetWriter(kept_adapter)`` with a
    ``removed_adapter`` exclusion writer, without a ``Document`` per row.

    Rank ``r`` takes the sorted ``input_folder`` files ``[r::world_size]`` (as datatrove's readers
    do), keeps the rows whose id has no decision (written unchanged, the text is never decoded
    into Python strings) and writes the others with ``removed_by``, ``reason`` and
    ``duplicate_of`` / ``similarity`` in their metadata, exactly as ``DuplicateFilter`` does.
    Output names follow datatrove's ParquetWriter: ``000_{rank:05d}.parquet``, only when non-empty.
    The folders may be local or URLs (``curation.workfolder``).

    ``kept="positions"`` (what ``cumed build`` runs) writes no kept rows: for each input file
    that lost rows, ``output_folder/<its name>`` holds their positions (column ``row``), and the
    publishing driver reads the input less those rows (``curation.build.kept``). The kept texts
    (~98 % of them) are then written once by stage A and once by the store, not copied, written
    and read back a third time here in between.
    """

    name = "dedup"  # the same counters as DuplicateFilter under the same name in the build stats
    type = "🔻 - FILTER"

    def __init__(self, input_folder: str, output_folder: str, decisions_folder: str, removed_folder: str | None = None,
                 glob_pattern: str = "*.parquet", batch_rows: int = 16_384, compression: str | None = "zstd",
                 use_dictionary: bool | list[str] = True, write_statistics: bool | list[str] = True,
                 data_page_size: int | None = None, kept: str = "rows"):
        """``compression``, ``use_dictionary``, ``write_statistics``, ``data_page_size``: pyarrow's,
        for the outputs (``cumed build`` passes ``curation.rows.intermediate_parquet``); ``batch_rows``:
        the rows read, filtered and written at a time, in whole row groups (``parquet_row_groups``;
        16k short QA records: ~6.5 MB of text); ``kept``: ``rows`` (the kept rows) or ``positions``
        (the removed rows' positions per input file)."""
        super().__init__()
        if kept not in ("rows", "positions"):
            raise ValueError(f"ApplyDuplicateDecisions: kept must be 'rows' or 'positions', got {kept!r}")
        self.kept = kept
        self.batch_rows = batch_rows
        self.input_folder, self.output_folder = str(input_folder), str(output_folder)
        self.decisions_folder = str(decisions_folder)
        self.removed_folder = str(removed_folder) if removed_folder else None
        self.glob_pattern = glob_pattern
        self.options = {"compression": compression, "use_dictionary": use_dictionary,
                        "write_statistics": write_statistics, "data_page_size": data_page_size}

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from curation.rows import DOC_SCHEMA

        if data:
            yield from data
        source = folder(self.input_folder)
        files = names(source, self.glob_pattern)[rank::world_size]
        with self.track_time(), contextlib.ExitStack() as stack:
            dec, ids, rows = None, [], []
            if files:
                dec = read_parquet(folder(self.decisions_folder), decision_files(self.decisions_folder)[0])
                # Each file's removed rows, then this task's decisions only, found once: ``is_in``
                # hashes its value set on every call, and each batch looking up every duplicate of
                # the corpus (370k at 10M records) made stage C of a 10M build take 53.8 s, not 21.5 s.
                # (The decisions looked up in each file's ids, not the reverse: the value set is
                # the duplicates, not the task's documents, 1M at 1M records: 0.36 s.)
                ids = [read_parquet(source, f, columns=["id"]).column("id").cast(pa.string()) for f in files]
                rows = [np.flatnonzero(pc.is_in(i, value_set=dec.column("id")).to_numpy(zero_copy_only=False))
                        for i in ids]
                mine = pa.chunked_array([i.take(pa.array(r)) for i, r in zip(ids, rows)], type=pa.string())
                dec = dec.filter(pc.is_in(dec.column("id"), value_set=mine))
            if self.kept == "positions":
                removed_parts, n_kept = self._mark_positions(source, files, [len(i) for i in ids], rows, dec)
            else:
                removed_parts, n_kept = self._write_kept(source, files, dec, rank, stack)
            n_removed = sum(p.num_rows for p in removed_parts)
            self.stat_update(StatHints.total, value=n_kept + n_removed)
            self.stat_update(StatHints.forwarded, value=n_kept)
            self.stat_update(StatHints.dropped, value=n_removed)
            if n_removed and self.removed_folder:
                write_parquet(folder(self.removed_folder), f"000_{rank:05d}.parquet", pa.concat_tables(removed_parts),
                              **self.options)

    def _write_kept(self, source, files: list[str], dec, rank: int, stack) -> tuple[list[pa.Table], int]:
        """The kept rows of ``files`` into ``000_{rank}.parquet``: (removed rows, kept count)."""
        from curation.rows import DOC_SCHEMA

        kept_writer, removed_parts, n_kept = None, [], 0
        for f in files:
            # A batch at a time, not the whole file: the task holds one batch of texts, not its
            # share of the corpus (all of its files' kept rows were concatenated, then written).
            for t in parquet_row_groups(source, f, self.batch_rows):
                t = t.select(DOC_SCHEMA.names).cast(DOC_SCHEMA)
                mask = pc.is_in(t.column("id"), value_set=dec.column("id"))
                gone = t.filter(mask)  # the text column is copied, never decoded
                kept = t.filter(pc.invert(mask)) if gone.num_rows else t  # no duplicate: as read
                if gone.num_rows:
                    removed_parts.append(self._removed_rows(gone, dec))
                if kept.num_rows:
                    if kept_writer is None:  # only a non-empty output is written, as datatrove's writer
                        kept_writer = stack.enter_context(parquet_writer(
                            folder(self.output_folder), f"000_{rank:05d}.parquet", DOC_SCHEMA, **self.options))
                    kept_writer.write_table(kept)
                    n_kept += kept.num_rows
        return removed_parts, n_kept

    def _mark_positions(self, source, files: list[str], sizes: list[int], removed: list[np.ndarray],
                        dec) -> tuple[list[pa.Table], int]:
        """The positions ``removed`` of each of ``files`` (of ``sizes`` rows) into ``output_folder/<file>``
        (column ``row``) where there are some: (removed rows, kept count). Only the removed rows are
        taken out of the file's batches; the kept ones stay where stage A wrote them."""
        from curation.rows import DOC_SCHEMA

        removed_parts, n_kept = [], 0
        for f, size, rows in zip(files, sizes, removed):
            n_kept += size - len(rows)
            if not len(rows):
                continue
            start = 0
            for t in parquet_row_groups(source, f, self.batch_rows):
                lo, hi = np.searchsorted(rows, [start, start + t.num_rows])
                if hi > lo:
                    gone = t.take(pa.array(rows[lo:hi] - start)).select(DOC_SCHEMA.names).cast(DOC_SCHEMA)
                    removed_parts.append(self._removed_rows(gone, dec))
                start += t.num_rows
            write_parquet(folder(self.output_folder), f, pa.table({"row": pa.array(rows, pa.int64())}), **self.options)
        return removed_parts, n_kept

    def _removed_rows(self, gone: pa.Table, dec: pa.Table) -> pa.Table:
        """The removed rows with ``removed_by``, ``reason`` and ``duplicate_of`` / ``similarity`` in
        their metadata, as ``DuplicateFilter`` and the exclusion writer record them."""
        import json

        from curation.rows import DOC_SCHEMA, REMOVED_SCHEMA, _extras_many

        d = dec.take(pc.index_in(gone.column("id"), value_set=dec.column("id")))
        metas, reasons = [], []
        for m, of, sim, kind in zip(gone.column("metadata").to_pylist(), d.column("duplicate_of").to_pylist(),
                                    d.column("similarity").to_pylist(), d.column("kind").to_pylist()):
            meta = json.loads(m or "{}")
            meta["duplicate_of"], meta["similarity"] = of, sim
            metas.append(meta)
            reasons.append(f"exact_duplicate: of {of}" if kind == "exact"
                           else f"near_duplicate: of {of} (jaccard {sim:.2f})")
        # one update per counter, not one stat_update per removed document
        add_counts(self, Counter(f"dropped_{r.split(':')[0]}" for r in reasons))
        return pa.table({
            **{c: gone.column(c) for c in DOC_SCHEMA.names if c != "metadata"},
            "metadata": pa.array(_extras_many(metas), pa.string()),
            "removed_by": pa.array([DuplicateFilter.name] * len(metas), pa.string()),
            "reason": pa.array(reasons, pa.string()),
        }).select(REMOVED_SCHEMA.names).cast(REMOVED_SCHEMA)
