"""Documents <-> Parquet rows of the ``documents`` schema.

datatrove writers and readers take an ``adapter``; these two keep the store's columns flat
(``source``, ``category``... as columns, everything else as a JSON string) so that Parquet
files written mid-pipeline are already in the published schema.
"""

from __future__ import annotations

import json

import pyarrow as pa
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.writers import ParquetWriter
from datatrove.utils.batching import batched
from datatrove.utils.typeshelper import StatHints

from curation.metrics import add_counts, add_metric, batch_metric
from cumed.schemas import schema_for

COLUMNS = ("source", "category", "department")
# Keys that become their own columns on removed rows, or are bookkeeping only.
_NOT_METADATA = set(COLUMNS) | {"removed_by", "reason", "file_path"}

# The writer's count of documents written. datatrove's own writer names it after the file-name
# template with a placeholder rank ("XXXXX.parquet"), which reads like a file in the stats.
DOCUMENTS_WRITTEN = "documents_written"

DOC_SCHEMA = schema_for("documents")
REMOVED_SCHEMA = schema_for("documents", removed=True)


# one encoder for all rows: json.dumps with keyword arguments builds a new encoder per call
_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)


def _extras(meta: dict) -> str:
    extras = {k: v for k, v in meta.items() if k not in _NOT_METADATA}
    return _JSON.encode(extras) if extras else "{}"


# column -> value of a document; one definition for a row (adapters) and a batch (``rows_table``)
_KEPT_FIELDS = (
    ("id", lambda d: d.id),
    ("text", lambda d: d.text),
    ("source", lambda d: str(d.metadata.get("source", ""))),
    ("category", lambda d: str(d.metadata.get("category", ""))),
    ("department", lambda d: str(d.metadata.get("department", "") or "")),
    ("n_chars", lambda d: len(d.text)),
    ("metadata", lambda d: _extras(d.metadata)),
)
_REMOVED_FIELDS = _KEPT_FIELDS + (
    ("removed_by", lambda d: str(d.metadata.get("removed_by", "unknown"))),
    ("reason", lambda d: str(d.metadata.get("reason", "") or d.metadata.get("removed_by", "unknown"))),
)


def doc_to_row(doc: Document, removed: bool = False) -> dict:
    return {col: get(doc) for col, get in (_REMOVED_FIELDS if removed else _KEPT_FIELDS)}


def kept_adapter(self, doc: Document) -> dict:  # datatrove binds adapters as methods
    return doc_to_row(doc)


def removed_adapter(self, doc: Document) -> dict:
    return doc_to_row(doc, removed=True)


def row_adapter(self, data: dict, path: str, id_in_file) -> dict:
    """ParquetReader adapter: a documents row back into a Document's fields."""
    meta = json.loads(data.get("metadata") or "{}")
    for k in COLUMNS:
        meta[k] = data.get(k, "")
    return {"text": data["text"], "id": data["id"], "media": [], "metadata": meta}


def empty_table(removed: bool = False) -> pa.Table:
    return (REMOVED_SCHEMA if removed else DOC_SCHEMA).empty_table()


def rows_table(docs: list[Document], removed: bool = False) -> pa.Table:
    """``doc_to_row`` for a batch, column by column (what the Parquet writer needs anyway)."""
    fields = _REMOVED_FIELDS if removed else _KEPT_FIELDS
    return pa.table({col: [get(d) for d in docs] for col, get in fields}, schema=REMOVED_SCHEMA if removed else DOC_SCHEMA)


class RankParquetWriter(ParquetWriter):
    """datatrove's ParquetWriter for file names that depend on the rank only (the default
    ``${rank}.parquet``), writing a batch of documents at a time.

    datatrove writes one document at a time: it fills the file-name template, calls the adapter,
    updates four stats and appends a row dict, per document: at ~80 k documents that was half
    of a near-duplicate stage. Here a batch of ``batch_size`` documents becomes one Arrow table
    (built column by column when the adapter is ``kept_adapter`` or ``removed_adapter``), one
    row group, and one stats update per counter. Same files (same row groups, same file
    switches at ``max_file_size``), same stats but for the name of the document counter."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not set(self.output_filename.get_identifiers()) <= {"rank"}:
            raise ValueError(f"RankParquetWriter: output_filename may only use ${{rank}}, got {self.output_filename.template!r}")

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with self:
            for batch in batched(data, self.batch_size):
                with self.track_time():
                    self._write_docs(batch, rank)
                yield from batch

    def _write_docs(self, docs: list[Document], rank: int) -> None:
        import pyarrow.parquet as pq

        original = name = self._get_output_filename(docs[0], rank)
        if self.max_file_size > 0:  # datatrove's file switch, checked per batch (its bytes land per batch too)
            name = self._get_filename_with_file_id(original)
            if self._get_output_file_with_retry(name).tell() >= self.max_file_size:
                self.file_id_counter[original] += 1
                new = self._get_filename_with_file_id(original)
                self._on_file_switch(original, name, new)
                name = new
        adapter = getattr(self.adapter, "__func__", None)
        if adapter in (kept_adapter, removed_adapter):
            table = rows_table(docs, removed=adapter is removed_adapter)
        else:
            table = pa.Table.from_pylist([self.adapter(d) for d in docs], schema=self.schema)
        if name not in self._writers:
            self._writers[name] = pq.ParquetWriter(
                self._get_output_file_with_retry(name), schema=self.schema or table.schema,
                compression=self.compression, use_content_defined_chunking=self.use_content_defined_chunking,
                write_page_index=self.write_page_index)
        self._writers[name].write_table(table, row_group_size=self.batch_size)
        # what datatrove's write records per document: the document counter, total, doc_len(_tokens)
        add_counts(self, {DOCUMENTS_WRITTEN: len(docs), StatHints.total: len(docs)})
        add_metric(self, "doc_len", batch_metric([len(d.text) for d in docs]))
        tokens = [d.metadata["token_count"] for d in docs if d.metadata.get("token_count")]
        if tokens:
            add_metric(self, "doc_len_tokens", batch_metric(tokens))
