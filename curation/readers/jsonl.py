"""``jsonl``: one document per line of JSON Lines files, on datatrove's ``JsonlReader``.

Compression follows the file name (datatrove's ``compression="infer"``, fsspec's codecs):
``.gz``, ``.zst`` (with ``zstandard`` installed), ``.bz2``, ``.xz``; ``options.compression``
forces one. Paths may be local or any fsspec URL (``s3://...``).

Text, id and metadata: ``curation.readers.records`` (``text_field`` / ``template``, ``id_field``,
``metadata_fields``). A line that is not JSON, a record without its text or id field, a text
that is not a string: each a read error naming the file, the line and the field.
"""

from __future__ import annotations

from collections.abc import Iterator

from datatrove.data import Document
from datatrove.pipeline.readers.jsonl import JsonlReader

from curation.batch import DocumentBatch
from curation.readers.base import CHUNK_RECORDS, line_blocks
from curation.readers.records import RecordsReader


class JsonlFilesReader(RecordsReader, JsonlReader):
    """datatrove's ``JsonlReader`` with cumed ids, metadata and counted read errors.

    Args:
        compression: ``infer`` (default: from the extension), ``gzip``, ``zstd``, ``bz2`` or none.
        text_field, template, each, id_field, metadata_fields, list_sep: see ``curation.readers.records``.
    """

    name = "jsonl"
    options = (*RecordsReader.options, "compression")
    unit = "line"

    def read_records(self, filepath: str) -> Iterator[Document]:
        for batch in self.record_chunks(filepath):
            yield from batch.documents()

    def record_chunks(self, filepath: str) -> Iterator[DocumentBatch]:
        # Why not JsonlReader.read_file: it logs a line that does not parse and goes on (and stops
        # the file at the first undecodable byte), so the document is lost from the count. This is
        # the same reading (datatrove's open with its compression, orjson, the adapter through
        # get_document_from_dict) with those cases yielded as read errors instead, a chunk of
        # lines at a time (``_chunk``).
        import time

        relpath = self.relpath(filepath)
        li, seen, spent = -1, 0, 0.0
        pending, numbers = [], []  # the non-blank lines not yet in a chunk, and their indices
        broken = None

        def chunk_of(lines: list[bytes], indices: list[int]) -> DocumentBatch:  # timed as datatrove's track_time
            nonlocal spent, seen  # would, but added up per file
            t0 = time.perf_counter()
            batch = self._chunk(lines, indices, filepath)
            spent += time.perf_counter() - t0
            seen += len(lines)
            return batch

        try:
            with self.data_folder.open(filepath, "rb", compression=self.compression) as f:
                # a block of lines at a time (not ``for line in f``: the zstd stream fsspec opens has
                # no ``readline``; datatrove opens in text mode, whose decoder stops the file at a
                # bad byte), and no Python step per line
                for block in line_blocks(f):
                    lines = block.split(b"\n")
                    if block.endswith(b"\n"):
                        lines.pop()
                    if lines and min(map(len, lines)) and not any(map(bytes.isspace, lines)):  # no blank line
                        pending += lines
                        numbers += range(li + 1, li + 1 + len(lines))
                    else:
                        kept = [(k, line) for k, line in enumerate(lines, li + 1) if line.strip()]
                        pending += [line for _, line in kept]
                        numbers += [k for k, _ in kept]
                    li += len(lines)
                    while len(pending) >= CHUNK_RECORDS:
                        yield chunk_of(pending[:CHUNK_RECORDS], numbers[:CHUNK_RECORDS])
                        del pending[:CHUNK_RECORDS], numbers[:CHUNK_RECORDS]
        except _stream_errors() as e:  # a compressed stream cut short, a corrupt archive
            broken = self.error(f"{relpath}: cannot read past line {li + 1} ({type(e).__name__}: {e}); "
                                "fix: restore the complete file", filepath, f"broken@{li + 1}", line=li + 2)
        if pending:  # the lines before the end, or before the break
            yield chunk_of(pending, numbers)
        self.stats.time_stats.update(spent, "file")
        if broken is not None:
            yield DocumentBatch.from_documents([broken])
        elif not seen:
            yield DocumentBatch.from_documents([self.error(
                f"{relpath}: no JSON line in the file; fix: remove it from the recipe path or restore its content",
                filepath, 0)])

    def _chunk(self, lines: list[bytes], indices: list[int], filepath: str) -> DocumentBatch:
        """The documents of ``lines`` (at line ``indices``): column by column when every line is a
        well-formed record (``records_batch``), else one line at a time, so that each bad line is
        a read error of its own."""
        import orjson

        try:
            records = list(map(orjson.loads, lines))
        except orjson.JSONDecodeError:
            records = None
        batch = records and self.records_batch(records, filepath, indices)
        if batch is not None:
            return batch
        return DocumentBatch.from_documents([self._line_document(li, line, filepath) for li, line in zip(indices, lines)])

    def _line_document(self, li: int, line: bytes, filepath: str) -> Document:
        import orjson

        try:
            record = orjson.loads(line.rstrip(b"\r\n"))
        except orjson.JSONDecodeError as e:
            return self.error(
                f"{self.relpath(filepath)} line {li + 1}, column {e.colno}: invalid JSON ({e.msg}); "
                "fix: repair or delete the line (a truncated last line means the file was cut)",
                filepath, li, line=li + 1)
        return self.get_document_from_dict(record, filepath, li)


def _stream_errors() -> tuple[type[Exception], ...]:
    errors: tuple[type[Exception], ...] = (EOFError, OSError)
    try:
        import zstandard
    except ImportError:
        return errors
    return (*errors, zstandard.ZstdError)
