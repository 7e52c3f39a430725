"""Documents <-> Parquet rows of the ``documents`` schema.

datatrove writers and readers take an ``adapter``; these two keep the store's columns flat
(``source``, ``category``... as columns, everything else as a JSON string) so that Parquet
files written mid-pipeline are already in the published schema.
"""

from __future__ import annotations

import json

import pyarrow as pa
from datatrove.data import Document
from datatrove.pipeline.writers import ParquetWriter

from .schemas import schema_for

COLUMNS = ("source", "category", "department")
# Keys that become their own columns on removed rows, or are bookkeeping only.
_NOT_METADATA = set(COLUMNS) | {"removed_by", "reason", "file_path"}

DOC_SCHEMA = schema_for("documents")
REMOVED_SCHEMA = schema_for("documents", removed=True)


def _extras(meta: dict) -> str:
    extras = {k: v for k, v in meta.items() if k not in _NOT_METADATA}
    return json.dumps(extras, ensure_ascii=False, sort_keys=True, default=str)


def doc_to_row(doc: Document, removed: bool = False) -> dict:
    meta = doc.metadata
    row = {
        "id": doc.id,
        "text": doc.text,
        "source": str(meta.get("source", "")),
        "category": str(meta.get("category", "")),
        "department": str(meta.get("department", "") or ""),
        "n_chars": len(doc.text),
        "metadata": _extras(meta),
    }
    if removed:
        row["removed_by"] = str(meta.get("removed_by", "unknown"))
        row["reason"] = str(meta.get("reason", "") or meta.get("removed_by", "unknown"))
    return row


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


class RankParquetWriter(ParquetWriter):
    """datatrove's ParquetWriter for file names that depend on the rank only (the default
    ``${rank}.parquet``): the name is built once per rank and file switch instead of four times
    per document (datatrove fills the template with each document's id and metadata, then
    prefixes the file id). Same files, same stats."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not set(self.output_filename.get_identifiers()) <= {"rank"}:
            raise ValueError(f"RankParquetWriter: output_filename may only use ${{rank}}, got {self.output_filename.template!r}")
        self._names: dict = {}
        self._id_names: dict = {}

    def _get_output_filename(self, document: Document, rank: int | str = 0, **kwargs) -> str:
        key = (rank, *sorted(kwargs.items()))
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = super()._get_output_filename(document, rank, **kwargs)
        return name

    def _get_filename_with_file_id(self, filename: str) -> str:
        key = (filename, self.file_id_counter[filename])
        name = self._id_names.get(key)
        if name is None:
            name = self._id_names[key] = super()._get_filename_with_file_id(filename)
        return name
