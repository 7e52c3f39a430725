"""``parquet``: one document per row of Parquet files, on datatrove's ``ParquetReader``.

Paths may be local or any fsspec URL (``s3://...``). Text, id and metadata:
``curation.readers.records``. A row without its text or id, a text column of numbers: each row a
read error naming the file, the row (from 0) and the field. A file pyarrow cannot open (not
Parquet, cut short) is one read error naming the file and how many rows were read before it broke.
"""

from __future__ import annotations

from collections.abc import Iterator

from datatrove.data import Document
from datatrove.pipeline.readers.parquet import ParquetReader

from curation.batch import DocumentBatch
from curation.readers.records import RecordsReader


class ParquetFilesReader(RecordsReader, ParquetReader):
    """datatrove's ``ParquetReader`` with cumed ids, metadata and counted read errors.

    Args:
        batch_size: rows per pyarrow batch (default 1000).
        text_field, template, each, id_field, metadata_fields, list_sep: see ``curation.readers.records``.
    """

    name = "parquet"
    options = (*RecordsReader.options, "batch_size")

    def read_records(self, filepath: str) -> Iterator[Document]:
        for batch in self.record_chunks(filepath):
            yield from batch.documents()

    def record_chunks(self, filepath: str) -> Iterator[DocumentBatch]:
        yield from self.row_chunks(filepath, lambda: self._parquet_batches(filepath))

    def _parquet_batches(self, filepath: str) -> Iterator[list]:
        """The rows of the file as lists of dicts, a pyarrow batch at a time (datatrove's
        ``ParquetReader.read_file``, without the document per row)."""
        import pyarrow.parquet as pq

        with self.data_folder.open(filepath, "rb") as f:
            with pq.ParquetFile(f) as pqf:
                columns = [self.text_key, self.id_key] if not self.read_metadata else None
                for batch in pqf.iter_batches(batch_size=self.batch_size, columns=columns):
                    yield batch.to_pylist()

    def row_chunks(self, filepath: str, batches) -> Iterator[DocumentBatch]:
        """The documents of ``batches()`` (lists of row dicts of one file), a batch each: column by
        column when every row is well formed (``records_batch``), else row by row; a file that
        breaks is one read error after the rows read before it, so that it is counted, never
        skipped."""
        import pyarrow as pa

        n = 0
        try:
            for records in batches():
                if not records:
                    continue
                rows = list(range(n, n + len(records)))
                with self.track_time("batch"):
                    batch = self.records_batch(records, filepath, rows) or DocumentBatch.from_documents(
                        [self.get_document_from_dict(r, filepath, i) for r, i in zip(records, rows)])
                n += len(records)
                yield batch
        except (pa.ArrowException, OSError) as e:
            yield DocumentBatch.from_documents([self.error(
                f"{self.relpath(filepath)}: unreadable after {n} rows ({type(e).__name__}: {e}); "
                "fix: restore the file or remove it from the recipe path", filepath, f"broken@{n}", row=n)])
