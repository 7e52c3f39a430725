"""What the readers of the users' own data share (``jsonl``, ``parquet``, ``hf``): one record (a
JSON object, a table row) -> one Document, through datatrove's ``adapter`` hook.

The file listing, decompression and row iteration are datatrove's (``JsonlReader``,
``ParquetReader``); this module only says how a record's fields become the text, the id and the
metadata, and turns a bad record into a read-error document instead of datatrove's silent skip.

Options (a recipe's ``options:``):
    text_field       the field (dotted path) holding the text, a string (default ``text``)
    template / each  a text template over the record instead (``curation.readers.templates``)
    id_field         the record's own id: ``id = stable_id(source, file, "id=<value>")``; a record
                     without it is a read error. Without ``id_field`` the id is a stable hash of
                     source, file and line (JSONL) or row (Parquet, Arrow).
    metadata_fields  dotted paths copied to ``metadata`` under their last part (absent: skipped)
    list_sep         joins list values in a template (default newline)

A bad record is never skipped: a missing or null field, a field of the wrong type (a number
where the text should be), an empty text or a record that is not an object becomes a document
with ``read_error`` naming the file, the line or row and the field, and ``DropReadErrors``
counts it as removed by ``reader``.

A chunk of well-formed records (every record an object, its text and id plain fields of the right
type) becomes one ``DocumentBatch`` column by column (``RecordsReader.records_batch``); a chunk
with any other record goes one record at a time, through the adapter above, so that each bad
record gets its own message. Both give the same documents.
"""

from __future__ import annotations

from cumed.ids import id_prefix, stable_ids_after
from curation.batch import DocumentBatch
from curation.readers import templates
from curation.readers.base import CumedReader

# metadata keys the reader itself sets: a metadata field may not overwrite them
RESERVED = ("source", "category", "department", "file", "license", "synthetic", "native_id", "read_error",
            "line", "row", "removed_by", "reason", "id", "text", "filepath", "index", "native")


class RecordError(ValueError):
    """A record the adapter cannot turn into a document: names the field and the fix."""

    def __init__(self, field: str | None, problem: str, fix: str):
        super().__init__(problem)
        self.field, self.problem, self.fix = field, problem, fix


def _kind(value) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__)


def _field(record: dict, path: str, what: str):
    """The value at ``path``; a ``RecordError`` when it is missing or null."""
    try:
        value = templates.lookup(record, path)
    except templates.MissingField as e:
        raise RecordError(path, str(e), f"add the field to the record or set options.{what} in the recipe") from None
    if value is None:
        raise RecordError(path, f"field {path!r} is null", f"fill it or drop the record; options.{what} names it")
    return value


def record_adapter(self: "RecordsReader", data, path: str, id_in_file: int) -> tuple[str, object, dict]:
    """The reader's ``adapter``: a raw record -> ``(text, native id or None, metadata)``, the
    metadata starting with the record's position (``line`` or ``row``). A tuple, not datatrove's
    dict: only ``RecordsReader.get_document_from_dict`` calls it, once per record.

    Raises ``RecordError`` for a record that cannot be a document (see the module doc)."""
    if not isinstance(data, dict):
        raise RecordError(None, f"record is {_kind(data)}, not an object", "write one JSON object per line")
    if self.template:
        try:
            text = templates.render(self.template, data, self.list_sep, self.each)
        except templates.MissingField as e:
            raise RecordError(e.path, str(e), "fix options.template in the recipe or the record") from None
        if not text:
            raise RecordError(None, "the template gives an empty text", "fill the record's fields or drop it")
    else:
        text = _field(data, self.text_key, "text_field")
        if not isinstance(text, str):
            raise RecordError(self.text_key, f"field {self.text_key!r} is {_kind(text)} ({str(text)[:40]}), not a string",
                              "store the text as a string, or set options.template to format other fields")
        text = text.strip()
        if not text:
            raise RecordError(self.text_key, f"field {self.text_key!r} is empty", "fill it or drop the record")
    native = None
    if self.id_field:
        native = _field(data, self.id_field, "id_field")
        if isinstance(native, bool) or not isinstance(native, (str, int)) or not str(native).strip():
            raise RecordError(self.id_field, f"field {self.id_field!r} is {_kind(native)} ({str(native)[:40]!r}), "
                              "not a non-empty string or integer", "give every record its own id, or drop options.id_field")
    meta = self.position(id_in_file)
    for p in self.metadata_fields:
        if templates.has(data, p):
            meta[p.split(".")[-1]] = templates.lookup(data, p)
    return text, native, meta


class RecordsReader(CumedReader):
    """A ``CumedReader`` whose records are dicts made into documents by ``record_adapter``.

    Mixed before one of datatrove's disk readers (``class X(RecordsReader, JsonlReader)``):
    ``CumedReader.__init__`` passes ``adapter``, ``text_key`` and ``id_key`` on to it.
    ``unit`` names a record's position in messages (``line`` or ``row``)."""

    options = ("text_field", "template", "each", "id_field", "metadata_fields", "list_sep")
    unit = "row"

    def __init__(self, data_folder, text_field: str | None = None, template: str | None = None,
                 each: dict[str, str] | None = None, id_field: str | None = None,
                 metadata_fields: list[str] | tuple[str, ...] = (), list_sep: str = "\n", **kwargs):
        super().__init__(data_folder, adapter=record_adapter, text_key=text_field or "text", id_key=id_field or "id",
                         **kwargs)
        if text_field and template:
            raise ValueError(f"source {self.source}: options text_field and template both set; use one")
        if isinstance(metadata_fields, str):
            metadata_fields = [metadata_fields]
        clash = [p for p in metadata_fields or () if p.split(".")[-1] in RESERVED]
        if clash:
            raise ValueError(f"source {self.source}: options.metadata_fields {clash[0]!r} would overwrite the reader's "
                             f"own metadata; the reserved names are {', '.join(RESERVED)}")
        self.template, self.each, self.list_sep = template, dict(each or {}), list_sep
        self.id_field = id_field
        self.metadata_fields = list(metadata_fields or ())

    def position(self, index: int) -> dict:
        """``{"line": 3}`` / ``{"row": 2}``, a record's position as metadata. Lines count from 1 (as
        editors do), rows from 0 (as pyarrow, pandas and ``datasets`` do)."""
        return {self.unit: index + 1 if self.unit == "line" else index}

    def where(self, filepath: str, index: int) -> tuple[str, dict]:
        """``"<file> line 3"`` / ``"<file> row 2"`` and the metadata that says the same."""
        pos = self.position(index)
        return f"{self.relpath(filepath)} {self.unit} {pos[self.unit]}", pos

    def get_document_from_dict(self, data, source_file: str, id_in_file: int):
        """datatrove's hook, without its silent skip: a record the adapter rejects (and a record
        with empty text, which datatrove drops with one warning per file) is a read error."""
        try:
            text, native, meta = self.adapter(data, source_file, id_in_file)
        except RecordError as e:
            where, pos = self.where(source_file, id_in_file)
            field = f" (field {e.field!r})" if e.field else ""
            return self.error(f"{where}{field}: {e.problem}; fix: {e.fix}", source_file, id_in_file, **pos)
        return self.document(text, source_file, id_in_file, native=native, **meta)

    def records_batch(self, records: list, filepath: str, indices: list[int]) -> DocumentBatch | None:
        """``[get_document_from_dict(r, filepath, i) for r, i in zip(records, indices)]`` as one
        batch, column by column, when every record is well formed; None when one is not (or
        when an option needs the general path), with nothing changed, so that the caller can
        go one record at a time.

        Per record that is one orjson parse, one join for the text and one sha1 for the id: the
        reader of 250k short QA records went from 10 to ~5 us a record."""
        n = len(records)
        if not n or set(map(type, records)) != {dict}:
            return None
        if self.template:
            texts = templates.render_many(self.template, records)
        else:
            texts = _plain_strings(records, self.text_key.strip())
            texts = texts and list(map(str.strip, texts))
        if not texts or not all(texts):
            return None
        natives = None
        if self.id_field:
            natives = [r.get(self.id_field.strip()) for r in records]
            types = set(map(type, natives))
            if not types <= {str, int}:
                return None
            natives = list(map(str.strip, natives if types == {str} else map(str, natives)))
            if not all(natives):
                return None
        relpath = self.relpath(filepath)
        meta = {"source": [self.source] * n, "category": [self.category] * n,
                "department": [self.department] * n, "file": [relpath] * n}
        if self.license:
            meta["license"] = [self.license] * n
        if self.synthetic:
            meta["synthetic"] = [True] * n
        if natives is None:
            keys = indices
        else:  # CumedReader.record_id's keys
            keys, repeats = self.native_keys(natives, indices)
            meta["native_id"] = natives
            if repeats is not None and any(repeats):
                meta["duplicate_native_id"] = repeats
        meta[self.unit] = [i + 1 for i in indices] if self.unit == "line" else list(indices)
        for path in self.metadata_fields:
            values = [templates.lookup(r, path) if templates.has(r, path) else None for r in records]
            key = path.split(".")[-1]
            if key in meta:  # as the per-record dict: a later field's value wins where it has one
                values = [old if new is None else new for old, new in zip(meta[key], values)]
            meta[key] = values
        if relpath != self._id_file:
            self._id_file, self._id_prefix = relpath, id_prefix(self.source, relpath)
        return DocumentBatch(stable_ids_after(self._id_prefix, self.source, keys), texts, meta)


def _plain_strings(records: list[dict], key: str) -> list[str] | None:
    """Every record's ``key`` when each holds a string, else None."""
    values = [r.get(key) for r in records]
    return values if set(map(type, values)) == {str} else None
