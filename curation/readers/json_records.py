"""``json``: one document per record of a JSON array or a JSON Lines file.

Format: ``auto`` (default) reads a file whose first non-blank character is ``[`` as a JSON array
and anything else as JSON Lines (``.txt`` files of ``{问, 答}`` lines included); ``json`` /
``jsonl`` force one. A JSON file holding one object is one record.

Text, in order of precedence:
    templates        a list of ``{when: <field path>, template: ..., each: {...}}``; the first
                     entry whose ``when`` field is present (not null) in the record is used.
                     For files mixing shapes, e.g. CMtMedQA's dialogues and safety prompts::

                         templates:
                           - when: history
                             template: "{history}\\n患者：{instruction}\\n医生：{output}"
                             each: {history: "患者：{0}\\n医生：{1}"}
                           - when: instruct
                             template: "患者：{instruct}\\n医生：{output}"

                     ``metadata.shape`` records which ``when`` matched.
    template / each  one template for every record (``curation.readers.templates``)
    text_fields      field paths whose values are joined with a blank line
    (none)           a string record is the text; an object's ``text`` field is the text

Other options: ``encoding`` (utf-8 | utf-8-sig | gb18030), ``id_field``, ``department_field``,
``title_field``, ``metadata_fields`` (dotted paths copied to metadata under their last part),
``list_sep`` (joins list values, default newline).

Broken input is reported, never skipped: a JSON Lines line that does not parse (a truncated last
line, bad bytes) is a read-error record and the next lines are read. A JSON array is parsed
element by element (``json.JSONDecoder.raw_decode`` over a sliding buffer: memory is bounded by
the largest record, not the file), so a truncated array yields every complete record before the
break plus one read-error record naming the line and character offset where it broke.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from datatrove.data import Document

from curation.readers import templates
from curation.readers.base import CumedReader, check_choice, decoded_lines, suggest_encoding

FORMATS = ("auto", "json", "jsonl")
_WS = " \t\r\n"
_SURROGATE = re.compile("[\udc80-\udcff]+")


class ArrayBroken(Exception):
    def __init__(self, message: str, line: int, offset: int):
        super().__init__(message)
        self.message, self.line, self.offset = message, line, offset


def iter_json_array(f, chunk_size: int = 1 << 20) -> Iterator[tuple[object, int]]:
    """Yield ``(element, line)`` for each element of the JSON array in text stream ``f``.

    Raises ``ArrayBroken`` (with line and character offset) where the array stops being valid
    JSON; elements before that point have already been yielded.
    """
    dec = json.JSONDecoder()
    buf = f.read(chunk_size)
    eof = len(buf) < chunk_size
    base, base_line, pos = 0, 1, 0  # file offset and line of buf[0]; cursor in buf

    def more() -> bool:
        nonlocal buf, eof
        if eof:
            return False
        got = f.read(max(chunk_size, len(buf)))  # grow geometrically for huge elements
        eof = len(got) == 0
        buf += got
        return bool(got)

    def skip_ws() -> bool:
        """Advance past whitespace; False at end of file."""
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in _WS:
                pos += 1
            if pos < len(buf):
                return True
            if not more():
                return False

    def broken(msg: str, at: int) -> ArrayBroken:
        return ArrayBroken(msg, base_line + buf.count("\n", 0, at), base + at)

    def trim():
        nonlocal buf, base, base_line, pos
        base_line += buf.count("\n", 0, pos)
        base += pos
        buf, pos = buf[pos:], 0

    if not skip_ws() or buf[pos] != "[":
        raise broken("not a JSON array (no '[' at the start)", pos)
    pos += 1
    first = True
    n = 0  # index of the element being read
    while True:
        if not skip_ws():
            raise broken("file ends inside the array (no closing ']')", pos)
        if buf[pos] == "]" and first:
            pos += 1
            break
        if not first:
            if buf[pos] == "]":
                pos += 1
                break
            if buf[pos] != ",":
                raise broken(f"expected ',' or ']' between records, found {buf[pos]!r}", pos)
            pos += 1
            if not skip_ws():
                raise broken("file ends after ',' (truncated)", pos)
        first = False
        while True:
            try:
                value, end = dec.raw_decode(buf, pos)
            except json.JSONDecodeError as e:
                if more():
                    continue
                start = base_line + buf.count("\n", 0, pos)
                raise broken(f"record {n} (from line {start}) does not parse: {e.msg}", e.pos) from None
            if end == len(buf) and more():  # a number at the buffer's end may continue
                continue
            break
        line = base_line + buf.count("\n", 0, pos)
        pos = end
        yield value, line
        n += 1
        trim()
    if skip_ws():
        raise broken(f"extra data after the closing ']': {buf[pos:pos + 20]!r}", pos)


class JsonReader(CumedReader):
    name = "🐿 cumed json"
    options = (
        "encoding", "format", "templates", "template", "each", "text_fields", "id_field",
        "department_field", "title_field", "metadata_fields", "list_sep",
    )

    def __init__(
        self,
        data_folder,
        encoding: str = "utf-8",
        format: str = "auto",
        templates: list[dict] | None = None,
        template: str | None = None,
        each: dict[str, str] | None = None,
        text_fields: list[str] | None = None,
        id_field: str | None = None,
        department_field: str | None = None,
        title_field: str | None = None,
        metadata_fields: list[str] | tuple[str, ...] = (),
        list_sep: str = "\n",
        **kwargs,
    ):
        super().__init__(data_folder, **kwargs)
        self.encoding = self.check_encoding(encoding)
        check_choice(format, FORMATS, "format", self.source)
        self.format = format
        given = [n for n, v in (("templates", templates), ("template", template), ("text_fields", text_fields)) if v]
        if len(given) > 1:
            raise ValueError(f"source {self.source}: options {' and '.join(given)} both set; use one of templates, template or text_fields")
        if text_fields:
            template = "\n\n".join("{" + f + "}" for f in text_fields)
        self.shapes: list[dict] = []
        for i, t in enumerate(templates or []):
            unknown = set(t) - {"when", "template", "each"}
            if unknown or "template" not in t:
                raise ValueError(
                    f"source {self.source}: options.templates[{i}] must have 'template' and may have 'when', 'each' "
                    f"(got {', '.join(sorted(t))})"
                )
            self.shapes.append({"when": t.get("when"), "template": t["template"], "each": t.get("each") or {}})
        if template:
            self.shapes.append({"when": None, "template": template, "each": each or {}})
        self.id_field = id_field
        self.department_field = department_field
        self.title_field = title_field
        self.metadata_fields = list(metadata_fields or ())
        self.list_sep = list_sep

    # -- one record -> one document ----------------------------------------------------------
    def record_document(self, record, filepath: str, index: int, line: int) -> Document:
        where = f"{self.relpath(filepath)} line {line} (record {index})"
        try:
            text, shape = self.record_text(record)
        except templates.MissingField as e:
            return self.error(f"{where}: {e}; fix the template in the recipe or the record", filepath, index, line=line)
        except ValueError as e:
            return self.error(f"{where}: {e}", filepath, index, line=line)
        meta = {"line": line, "record": index}
        if shape:
            meta["shape"] = shape
        if isinstance(record, dict):
            if self.title_field:
                meta["title"] = templates.as_text(templates.lookup(record, self.title_field)) if templates.has(record, self.title_field) else ""
            for path in self.metadata_fields:
                if templates.has(record, path):
                    meta[path.split(".")[-1]] = templates.lookup(record, path)
        native = templates.lookup(record, self.id_field) if self.id_field and templates.has(record, self.id_field) else None
        dept = ""
        if self.department_field and templates.has(record, self.department_field):
            dept = templates.as_text(templates.lookup(record, self.department_field), " ")
            dept = "" if dept.lower() in ("nan", "none", "null") else dept
        return self.document(text, filepath, index, native=native, department=dept, **meta)

    def record_text(self, record) -> tuple[str, str | None]:
        for shape in self.shapes:
            if shape["when"] is None or templates.has(record, shape["when"]):
                return templates.render(shape["template"], record, self.list_sep, shape["each"]), shape["when"]
        if self.shapes:
            keys = ", ".join(record) if isinstance(record, dict) else type(record).__name__
            whens = ", ".join(str(s["when"]) for s in self.shapes)
            raise ValueError(f"no template matches the record (when: {whens}; record has: {keys}); fix: add a templates entry for this shape")
        if isinstance(record, str):
            return record.strip(), None
        if isinstance(record, dict) and "text" in record:
            return templates.as_text(record["text"], self.list_sep), None
        raise ValueError("no text: set options.template, templates or text_fields in the recipe")

    # -- file shapes ---------------------------------------------------------------------------
    def read_records(self, filepath: str) -> Iterator[Document]:
        fmt = self.format
        if fmt == "auto":
            with self.data_folder.open(filepath, "rb") as f:
                head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
            fmt = "json" if head.startswith(b"[") else "jsonl"
        yield from (self._read_array(filepath) if fmt == "json" else self._read_lines(filepath))

    def _read_lines(self, filepath: str) -> Iterator[Document]:
        relpath = self.relpath(filepath)
        index = 0
        with self.data_folder.open(filepath, "rb") as f:
            for lineno, raw, text, err in decoded_lines(f, self.encoding):
                if not text.strip():
                    continue
                with self.track_time():
                    if err is not None:
                        doc = self.error(
                            f"{relpath} line {lineno}: bytes {err.object[err.start:err.end]!r} are not valid {self.encoding}; "
                            f"fix: {suggest_encoding(raw, self.encoding)}",
                            filepath, index, line=lineno,
                        )
                    else:
                        try:
                            record = json.loads(text)
                        except json.JSONDecodeError as e:
                            doc = self.error(
                                f"{relpath} line {lineno}, column {e.colno}: invalid JSON ({e.msg}); "
                                "fix: repair or delete the line (a truncated last line means the file was cut)",
                                filepath, index, line=lineno,
                            )
                        else:
                            doc = self.record_document(record, filepath, index, lineno)
                yield doc
                index += 1

    def _read_array(self, filepath: str) -> Iterator[Document]:
        relpath = self.relpath(filepath)
        index = 0
        # surrogateescape: bad bytes cost only the record that holds them (they come back as lone
        # surrogates, which valid text never contains); a file cut inside a character then reads
        # as a truncated array whose complete records are kept
        with self.data_folder.open(filepath, "rt", encoding=self.encoding, errors="surrogateescape", newline="") as f:
            try:
                for record, line in iter_json_array(f):
                    with self.track_time():  # the document, not what downstream steps do with it
                        bad = _undecoded(record)
                        if bad is not None:
                            run = _SURROGATE.search(bad).group()
                            doc = self.error(
                                f"{relpath} line {line} (record {index}): bytes {bytes(ord(c) - 0xDC00 for c in run)!r} "
                                f"are not valid {self.encoding}; fix: "
                                f"{suggest_encoding(bad.encode(self.encoding, 'surrogateescape'), self.encoding)}",
                                filepath, index, line=line)
                        else:
                            doc = self.record_document(record, filepath, index, line)
                    yield doc
                    index += 1
            except ArrayBroken as e:
                if index == 0 and e.message.startswith("not a JSON array"):
                    yield from self._read_single(filepath)
                    return
                yield self.error(
                    f"{relpath}: JSON array broken at line {e.line} (character {e.offset}): {e.message}; "
                    f"{index} complete records before it were read; fix: restore the complete file",
                    filepath, index, line=e.line,
                )

    def _read_single(self, filepath: str) -> Iterator[Document]:
        """``format: json`` on a file holding one top-level value: one record."""
        relpath = self.relpath(filepath)
        with self.data_folder.open(filepath, "rb") as f:
            raw = f.read()
        try:
            record = json.loads(raw.decode(self.encoding))
        except UnicodeDecodeError as e:
            yield self.error(f"{relpath}: bytes {e.object[e.start:e.end]!r} at byte {e.start} are not valid {self.encoding}; "
                             f"fix: {suggest_encoding(raw, self.encoding)}", filepath, 0)
            return
        except json.JSONDecodeError as e:
            yield self.error(f"{relpath} line {e.lineno}, column {e.colno}: invalid JSON ({e.msg}); fix: repair the file", filepath, 0, line=e.lineno)
            return
        yield self.record_document(record, filepath, 0, 1)


def _undecoded(value) -> str | None:
    """The first string in ``value`` that holds undecodable bytes (lone surrogates left by
    ``errors="surrogateescape"``), else None."""
    if isinstance(value, str):
        return value if _SURROGATE.search(value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        for x in ((k, v) if isinstance(k, str) else (v,)):
            bad = _undecoded(x)
            if bad is not None:
                return bad
    return None
