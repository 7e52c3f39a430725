"""``csv``: one document per CSV row, text from a template over the columns.

Recipe options:
    encoding          gb18030 | utf-8 | utf-8-sig (default utf-8; a leading BOM is always dropped
                      from the first column name)
    template          e.g. ``"{title}\\n{ask}\\n{answer}"`` (``curation.readers.templates``);
                      default: the non-empty named columns, one per line
    department_field  column giving ``metadata.department``
    id_field          column with a native id (else the row index is the record key)
    title_field       column copied to ``metadata.title``
    metadata_fields   columns copied into metadata as they are
    delimiter         default ``,``

Rows are decoded one physical line at a time, so a row with bad bytes, too few or too many
fields becomes a read-error record (naming file, line, field and fix) and the rest of the file is
read. Values in columns whose header name is empty count as extra fields: no template can name
them, and in the real data (39health disease.csv) they mark rows whose columns are shifted.
A template or field option naming a column the header does not have is a whole-file problem and
raises ``ValueError``.

It does not guess encodings or delimiters: the recipe states them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from datatrove.data import Document

from curation.readers import templates
from curation.readers.base import CumedReader, decoded_lines, suggest_encoding

csv.field_size_limit(1 << 28)


class CsvReader(CumedReader):
    name = "🔢 cumed csv"
    options = ("encoding", "template", "department_field", "id_field", "title_field", "metadata_fields", "delimiter")

    def __init__(
        self,
        data_folder,
        encoding: str = "utf-8",
        template: str | None = None,
        department_field: str | None = None,
        id_field: str | None = None,
        title_field: str | None = None,
        metadata_fields: list[str] | tuple[str, ...] = (),
        delimiter: str = ",",
        **kwargs,
    ):
        super().__init__(data_folder, **kwargs)
        self.encoding = self.check_encoding(encoding)
        self.template = template
        self.department_field = department_field
        self.id_field = id_field
        self.title_field = title_field
        self.metadata_fields = list(metadata_fields or ())
        self.delimiter = delimiter

    # -- subclasses (disease_cards) override these two --------------------------------------
    def check_header(self, header: list[str], relpath: str) -> None:
        wanted = templates.fields(self.template) if self.template else []
        wanted += [f for f in (self.department_field, self.id_field, self.title_field) if f]
        wanted += self.metadata_fields
        missing = [f for f in wanted if f not in header]
        if missing:
            cols = ", ".join(h for h in header if h)
            raise ValueError(
                f"source {self.source}: {relpath} has no column {missing[0]!r} (columns: {cols}); "
                "fix the template/field options in the recipe"
            )

    def row_text(self, row: dict[str, str]) -> str:
        if self.template:
            return templates.render(self.template, row)
        return "\n".join(v.strip() for k, v in row.items() if k and v and v.strip())

    # -- reading -----------------------------------------------------------------------------
    def read_records(self, filepath: str) -> Iterator[Document]:
        relpath = self.relpath(filepath)
        bad: dict[int, tuple[bytes, UnicodeDecodeError]] = {}

        def lines():
            for lineno, raw, text, err in decoded_lines(f, self.encoding):
                if err is not None:
                    bad[lineno] = (raw, err)
                yield text

        with self.data_folder.open(filepath, "rb") as f:
            reader = csv.reader(lines(), delimiter=self.delimiter)
            header = next(reader, None)
            if 1 in bad:
                raw, err = bad[1]
                raise ValueError(
                    f"source {self.source}: cannot decode the header of {relpath} (line 1) as {self.encoding}: {err.reason}; "
                    f"fix: {suggest_encoding(raw, self.encoding)}"
                )
            header = [h.strip() for h in header or []]
            self.check_header(header, relpath)
            named = [i for i, h in enumerate(header) if h]
            last_line = reader.line_num
            index = 0
            for fields in reader:
                first_line, last_line = last_line + 1, reader.line_num
                if not fields:  # a blank line is not a record
                    continue
                with self.track_time():  # the document, not what downstream steps do with it
                    doc = self._row_document(fields, header, named, filepath, relpath, index, first_line, last_line, bad)
                yield doc
                index += 1

    def _row_document(self, fields, header, named, filepath, relpath, index, first, last, bad) -> Document:
        where = f"{relpath} line {first}" if first == last else f"{relpath} lines {first}-{last}"
        bad_here = [ln for ln in range(first, last + 1) if ln in bad]
        if bad_here:
            raw, err = bad[bad_here[0]]
            col = next((header[i] or f"#{i + 1}" for i, v in enumerate(fields) if "\ufffd" in v and i < len(header)), "?")
            msg = (
                f"{relpath} line {bad_here[0]}, field {col!r}: bytes {err.object[err.start:err.end]!r} are not valid "
                f"{self.encoding}; fix: {suggest_encoding(raw, self.encoding)}"
            )
            return self.error(msg, filepath, index, line=first)
        if len(fields) < len(header):
            missing = [h or f"#{i + 1}" for i, h in enumerate(header) if i >= len(fields)]
            msg = (
                f"{where}: {len(fields)} fields, header has {len(header)}; missing field {missing[0]!r}; "
                "fix: add the missing values (quote values that contain the delimiter) or drop the row"
            )
            return self.error(msg, filepath, index, line=first)
        extra = [i for i, v in enumerate(fields) if v.strip() and (i >= len(header) or not header[i])]
        if extra:
            msg = (
                f"{where}: {len(extra)} value(s) beyond the {len(named)} named columns (field #{extra[0] + 1}: "
                f"{fields[extra[0]][:30]!r}); the row's columns are shifted; fix: repair or drop the row"
            )
            return self.error(msg, filepath, index, line=first)
        row = {header[i]: fields[i] for i in named}
        if sum(row[h].strip() == h for h in row) * 2 > len(row):
            msg = (f"{where}: the row repeats the header ({', '.join(list(row)[:3])}, ...), as where two CSV exports "
                   "were concatenated; fix: delete the line")
            return self.error(msg, filepath, index, line=first)
        try:
            text = self.row_text(row)
        except templates.MissingField as e:  # cannot happen after check_header, but stay explicit
            return self.error(f"{where}: {e}; fix the template", filepath, index, line=first)
        meta = {"line": first}
        if self.title_field:
            meta["title"] = row.get(self.title_field, "").strip()
        for k in self.metadata_fields:
            meta[k] = row.get(k, "").strip()
        return self.document(
            text,
            filepath,
            index,
            native=row.get(self.id_field) if self.id_field else None,
            department=self.row_department(row),
            **meta,
        )

    def row_department(self, row: dict[str, str]) -> str:
        if not self.department_field:
            return ""
        return " ".join(row.get(self.department_field, "").split())
