"""Documents <-> Parquet rows of the ``documents`` schema.

datatrove writers and readers take an ``adapter``; these two keep the store's columns flat
(``source``, ``category``... as columns, everything else as a JSON string) so that Parquet
files written mid-pipeline are already in the published schema.
"""

from __future__ import annotations

import json
from itertools import repeat
from json.encoder import encode_basestring

import pyarrow as pa
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.writers import ParquetWriter
from datatrove.utils.typeshelper import StatHints

from curation.batch import BATCHES, CHUNKS, DocumentBatch, emit, in_chunks, peek_stream
from curation.metrics import add_counts, add_metric, batch_metric
from curation.workfolder import is_url
from cumed.schemas import schema_for

COLUMNS = ("source", "category", "department")
# Keys that become their own columns on removed rows, or are bookkeeping only.
_NOT_METADATA = set(COLUMNS) | {"removed_by", "reason", "file_path"}

# The writer's count of documents written. datatrove's own writer names it after the file-name
# template with a placeholder rank ("XXXXX.parquet"), which reads like a file in the stats.
DOCUMENTS_WRITTEN = "documents_written"

DOC_SCHEMA = schema_for("documents")
REMOVED_SCHEMA = schema_for("documents", removed=True)


def intermediate_parquet(work_url) -> dict:
    """Writer options of the build's Parquet intermediates (``filtered/``, ``removed/``, the positions in ``kept/``
    of the work folder): read back once or twice by the next stage and the publishing driver,
    never published (the store re-encodes every row with its own options: the published bytes
    and content hash do not depend on these).

    CPU of writing ``filtered/`` and reading it back, 250k short QA records (98 MB of text):
    zstd, every column dictionary-encoded (datatrove's default, used before) 0.96 s, 47 MB; lz4,
    dictionaries for ``COLUMNS`` only 0.64 s, 69 MB; uncompressed, every column 0.61 s;
    uncompressed, ``COLUMNS`` only 0.39 s, 140 MB (ids, texts and metadata are unique per row:
    their dictionaries were built per row group on write and expanded on read for nothing).
    A local work folder is written uncompressed (CPU is the cost there; it already holds
    ~200 MB of signatures for these records); on object storage the bytes cross the network,
    so zstd.

    Statistics (min/max) only for ``COLUMNS``, and 1 MB data pages: nothing reads these files by
    a predicate, and a text column's min/max cost a comparison of every text on write and a
    larger footer to decode on read. Same 250k records, 2,000-row row groups, uncompressed:
    write 0.30 -> 0.23 s, read back 0.23 -> 0.08 s (``filtered/`` is read by stage C and by
    the publishing driver)."""
    return {"compression": "zstd" if is_url(work_url) else None, "use_dictionary": list(COLUMNS),
            "write_statistics": list(COLUMNS), "data_page_size": 1 << 20}


# one encoder for all rows: json.dumps with keyword arguments builds a new encoder per call
_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)


def _extras(meta: dict) -> str:
    extras = {k: v for k, v in meta.items() if k not in _NOT_METADATA}
    return _JSON.encode(extras) if extras else "{}"


# Exact types whose JSON text inside ``_JSON``'s output is one C call on the value (not bool:
# an int subclass written ``true``). Any other value is ``_JSON.encode(value)``: the encoder
# writes a dict's values exactly as it writes them alone.
_SCALAR_JSON = {str: encode_basestring, int: int.__repr__}


def _extras_many(metas: list[dict]) -> list[str]:
    """``[_extras(m) for m in metas]``, the same strings, column by column.

    ``_extras`` per document was 0.7 s of 250k short QA records (a dict comprehension and one
    encoder call per document, for 4 keys). The documents of a batch mostly share one key
    tuple (a reader's keys): per key tuple, each extra key's values are encoded in one ``map``
    and each row is one ``"".join`` of its keys and values in sorted-key order (``sort_keys``,
    the encoder's ``", "`` / ``": "`` separators): 0.3 s instead of 0.7 s, the same strings."""
    if len(metas) == 1:  # a row (the adapters): nothing to share
        return [_extras(metas[0])]
    out: list[str] = [""] * len(metas)
    groups: dict[tuple, list[int]] = {}
    for i, m in enumerate(metas):
        groups.setdefault(tuple(m), []).append(i)
    for keys, idx in groups.items():
        extra = [k for k in keys if k not in _NOT_METADATA]
        if not extra or not all(type(k) is str for k in extra):  # "{}"; or keys the encoder converts
            for i in idx:
                out[i] = _extras(metas[i])
            continue
        group = [metas[i] for i in idx]
        for i, row in zip(idx, _json_rows({k: [m[k] for m in group] for k in extra})):
            out[i] = row
    return out


def _json_rows(columns: dict[str, list]) -> list[str]:
    """One JSON object per row of ``columns`` (str key -> a value per row, every row has every
    key), the strings ``_extras`` writes: sorted keys, the encoder's separators. A key's values
    of one scalar type are encoded by one ``map``; one ``"".join`` per row."""
    pieces, literal = [], ""  # '{"key": ', its values' JSON, ', "key2": ', ..., '}'
    for n, k in enumerate(sorted(columns)):
        values = columns[k]
        literal += ("{" if n == 0 else ", ") + encode_basestring(k) + ": "
        types = set(map(type, values))
        scalar = len(types) == 1 and _SCALAR_JSON.get(types.pop())
        # one value in every row (a file, a license): written once. Only for str and int, where
        # equal values have one JSON text (not 0.0 and -0.0, nor 1 and True)
        if scalar and values.count(values[0]) == len(values):
            literal += scalar(values[0])
            continue
        pieces += [repeat(literal), map(scalar or _JSON.encode, values)]
        literal = ""
    pieces.append(repeat(literal + "}"))
    if len(pieces) == 1:  # every value the same in every row
        return [literal + "}"] * len(next(iter(columns.values()), []))
    return list(map("".join, zip(*pieces)))


def _extras_batch(batch: DocumentBatch) -> list[str]:
    """``_extras_many`` of ``batch.documents()``'s metadata, from the columns: the rows that have
    the same keys (a value that is not None) at a time, usually all of them."""
    extra = {k: v for k, v in batch.meta.items() if k not in _NOT_METADATA}
    if not extra:
        return ["{}"] * len(batch)
    if not all(type(k) is str for k in extra):
        return _extras_many([d.metadata for d in batch.documents()])
    if all(None not in v for v in extra.values()):
        return _json_rows(extra)
    out: list[str] = ["{}"] * len(batch)
    groups: dict[tuple, list[int]] = {}
    for i, present in enumerate(zip(*[[v is not None for v in col] for col in extra.values()])):
        groups.setdefault(present, []).append(i)
    for present, idx in groups.items():
        keys = [k for k, has in zip(extra, present) if has]
        if keys:
            for i, row in zip(idx, _json_rows({k: [extra[k][i] for i in idx] for k in keys})):
                out[i] = row
    return out


def _columns(docs: list[Document], removed: bool = False) -> dict[str, list]:
    """The documents schema's columns of ``docs``: the one definition, for a batch
    (``rows_table``) and a row (the adapters). One list comprehension per column (no function
    call per document and column) and the metadata JSON a batch at a time (``_extras_many``):
    1.0 s -> 0.45 s CPU for the 250k short QA records of a dedup-only build."""
    metas = [d.metadata for d in docs]
    texts = [d.text for d in docs]
    columns = {
        "id": [d.id for d in docs],
        "text": texts,
        "source": [str(m.get("source", "")) for m in metas],
        "category": [str(m.get("category", "")) for m in metas],
        "department": [str(m.get("department", "") or "") for m in metas],
        "n_chars": list(map(len, texts)),
        "metadata": _extras_many(metas),
    }
    if removed:
        columns["removed_by"] = [str(m.get("removed_by", "unknown")) for m in metas]
        columns["reason"] = [str(m.get("reason", "") or m.get("removed_by", "unknown")) for m in metas]
    return columns


def _batch_columns(batch: DocumentBatch) -> dict[str, list]:
    """``_columns(batch.documents())`` from the batch's columns (``curation.batch``)."""
    source, category, department = (batch.meta.get(k) for k in COLUMNS)

    def text(values, empty=""):
        if values is None:
            return [empty] * len(batch)
        if values and type(values[0]) is str and values.count(values[0]) == len(values):
            return values  # a reader's column: one source, category, department for the chunk
        return [empty if v is None else str(v) for v in values]

    return {
        "id": batch.ids,
        "text": batch.texts,
        "source": text(source),
        "category": text(category),
        "department": text(None if department is None else [v or "" for v in department]),
        "n_chars": list(map(len, batch.texts)),
        "metadata": _extras_batch(batch),
    }


def doc_to_row(doc: Document, removed: bool = False) -> dict:
    return {col: values[0] for col, values in _columns([doc], removed).items()}


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
    return pa.table(_columns(docs, removed), schema=REMOVED_SCHEMA if removed else DOC_SCHEMA)


class RankParquetWriter(ParquetWriter):
    """datatrove's ParquetWriter for file names that depend on the rank only (the default
    ``${rank}.parquet``), writing a batch of documents at a time.

    datatrove writes one document at a time: it fills the file-name template, calls the adapter,
    updates four stats and appends a row dict, per document: at ~80 k documents that was half
    of a near-duplicate stage. Here a batch of ``batch_size`` documents becomes one Arrow table
    (built column by column when the adapter is ``kept_adapter`` or ``removed_adapter``), one
    row group, and one stats update per counter. Same files (same row groups, same file
    switches at ``max_file_size``), same stats but for the name of the document counter."""

    def __init__(self, *args, use_dictionary: bool | list[str] = True, write_statistics: bool | list[str] = True,
                 data_page_size: int | None = None, **kwargs):
        """``use_dictionary``, ``write_statistics``, ``data_page_size``: pyarrow's (the defaults are
        datatrove's writer's; a list: those columns)."""
        super().__init__(*args, **kwargs)
        self.use_dictionary = use_dictionary
        self.write_statistics, self.data_page_size = write_statistics, data_page_size
        self._pending: dict[int, list[Document]] = {}  # write_batch's documents not yet in a row group
        if not set(self.output_filename.get_identifiers()) <= {"rank"}:
            raise ValueError(f"RankParquetWriter: output_filename may only use ${{rank}}, got {self.output_filename.template!r}")

    def write_batch(self, docs: list[Document], rank: int = 0) -> None:
        """Documents of one rank, gathered into row groups of exactly ``batch_size``; the rest
        waits for the next call, or for ``close``. The same files as one document at a time,
        however the documents come: a stream's chunks (``run``) or, as an exclusion writer, a
        step's removed documents of one chunk (a few, often none; datatrove's per-document
        ``write`` cost ~28 us a document, and ``CumedFilter`` calls this when present)."""
        pending = self._pending.setdefault(rank, [])
        pending.extend(docs)
        full = len(pending) - len(pending) % self.batch_size
        if full:
            with self.track_time():
                for start in range(0, full, self.batch_size):
                    self._write_docs(pending[start:start + self.batch_size], rank)
            del pending[:full]

    def close(self):
        for rank, pending in self._pending.items():
            if pending:
                with self.track_time():
                    self._write_docs(pending, rank)
        self._pending.clear()
        super().close()

    takes_batches = True  # the reader's DocumentBatches too (``curation.batch``), with kept_adapter
    takes_chunks = True  # and chunks of Documents (``curation.batch.in_chunks``)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        kind, data = peek_stream(data)
        if kind == BATCHES and getattr(self.adapter, "__func__", None) is not kept_adapter:
            kind, data = CHUNKS, (b.documents() for b in data)  # other adapters take Documents
        with self:
            if kind == BATCHES:
                for batch in data:
                    with self.track_time():
                        self._write_table(pa.table(_batch_columns(batch), schema=DOC_SCHEMA), rank,
                                          batch.texts, batch.column("token_count"))
                    yield batch
                return
            chunked, chunks = in_chunks(data, self.batch_size)
            for batch in chunks:  # the reader's chunks (what the filters left of them), or documents gathered
                self.write_batch(batch, rank)
                yield from emit(batch, chunked)

    def _write_docs(self, docs: list[Document], rank: int) -> None:
        adapter = getattr(self.adapter, "__func__", None)
        if adapter in (kept_adapter, removed_adapter):
            table = rows_table(docs, removed=adapter is removed_adapter)
        else:
            table = pa.Table.from_pylist([self.adapter(d) for d in docs], schema=self.schema)
        self._write_table(table, rank, [d.text for d in docs], [d.metadata.get("token_count") for d in docs])

    def _write_table(self, table: pa.Table, rank: int, texts: list[str], token_counts: list) -> None:
        """``table`` (rows of ``texts``) into this rank's file, as row groups of ``batch_size``."""
        import pyarrow.parquet as pq

        # the name depends on the rank only (checked in __init__)
        original = name = self.output_filename.substitute({"rank": str(rank).zfill(5)})
        if self.max_file_size > 0:  # datatrove's file switch, checked per batch (its bytes land per batch too)
            name = self._get_filename_with_file_id(original)
            if self._get_output_file_with_retry(name).tell() >= self.max_file_size:
                self.file_id_counter[original] += 1
                new = self._get_filename_with_file_id(original)
                self._on_file_switch(original, name, new)
                name = new
        if name not in self._writers:
            self._writers[name] = pq.ParquetWriter(
                self._get_output_file_with_retry(name), schema=self.schema or table.schema,
                compression=self.compression, use_dictionary=self.use_dictionary,
                write_statistics=self.write_statistics, data_page_size=self.data_page_size,
                use_content_defined_chunking=self.use_content_defined_chunking, write_page_index=self.write_page_index)
        self._writers[name].write_table(table, row_group_size=self.batch_size)
        # what datatrove's write records per document: the document counter, total, doc_len(_tokens)
        add_counts(self, {DOCUMENTS_WRITTEN: len(texts), StatHints.total: len(texts)})
        add_metric(self, "doc_len", batch_metric(list(map(len, texts))))
        tokens = [t for t in token_counts if t]
        if tokens:
            add_metric(self, "doc_len_tokens", batch_metric(tokens))
