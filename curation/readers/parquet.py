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
        yield from self.read_rows(filepath, lambda: ParquetReader.read_file(self, filepath))

    def read_rows(self, filepath: str, rows) -> Iterator[Document]:
        """The documents of ``rows()`` (a generator over one file); a file that breaks is one read
        error after the rows read before it, so that it is counted, never skipped."""
        import pyarrow as pa

        n = 0
        try:
            for doc in rows():
                n += 1
                yield doc
        except (pa.ArrowException, OSError) as e:
            yield self.error(f"{self.relpath(filepath)}: unreadable after {n} rows ({type(e).__name__}: {e}); "
                             "fix: restore the file or remove it from the recipe path", filepath, f"broken@{n}", row=n)
