"""``text_blocks``: records written as blocks of lines separated by blank lines.

The Toyhom ``Data_数据/IM_内科/内科.txt`` (GB18030) shape: line 1 ``title,ask``, line 2 the
answer, then one or more blank lines. ``lines`` names the fields of each line; a name with commas
(``"title,ask"``) splits that line at its first commas, so a question containing ``,`` stays
whole. Lines beyond the last are appended to the last field (a multi-paragraph answer).

Recipe options:
    encoding   gb18030 | utf-8 | utf-8-sig (default utf-8)
    lines      default ``["title,ask", "answer"]``
    template   default: the fields in order, one per line (``{title}\\n{ask}\\n{answer}``)

A block with fewer lines than ``lines``, a line without the expected comma, or bad bytes becomes
a read-error record naming the block's first line. The record key is the block index.
"""

from __future__ import annotations

from collections.abc import Iterator

from datatrove.data import Document

from curation.readers import templates
from curation.readers.base import CumedReader, decoded_lines, suggest_encoding


class TextBlocksReader(CumedReader):
    name = "📄 text blocks"
    options = ("encoding", "lines", "template")

    def __init__(
        self,
        data_folder,
        encoding: str = "utf-8",
        lines: list[str] | tuple[str, ...] = ("title,ask", "answer"),
        template: str | None = None,
        **kwargs,
    ):
        super().__init__(data_folder, **kwargs)
        self.encoding = self.check_encoding(encoding)
        self.line_fields = [[n.strip() for n in spec.split(",")] for spec in lines]
        names = [n for spec in self.line_fields for n in spec]
        self.template = template or "\n".join("{" + n + "}" for n in names)
        unknown = [f for f in templates.fields(self.template) if f not in names]
        if unknown:
            raise ValueError(f"source {self.source}: template field {unknown[0]!r} is not one of the block fields {', '.join(names)}")

    def read_records(self, filepath: str) -> Iterator[Document]:
        block: list[tuple[int, bytes, str, UnicodeDecodeError | None]] = []
        index = 0
        with self.data_folder.open(filepath, "rb") as f:
            for item in decoded_lines(f, self.encoding):
                if item[2].strip():
                    block.append(item)
                    continue
                if block:
                    with self.track_time():  # the document, not what downstream steps do with it
                        doc = self._block_document(block, filepath, index)
                    yield doc
                    index += 1
                    block = []
            if block:
                yield self._block_document(block, filepath, index)

    def _block_document(self, block, filepath: str, index: int) -> Document:
        relpath = self.relpath(filepath)
        first = block[0][0]
        for lineno, raw, _, err in block:
            if err is not None:
                return self.error(
                    f"{relpath} line {lineno}: bytes {err.object[err.start:err.end]!r} are not valid {self.encoding}; "
                    f"fix: {suggest_encoding(raw, self.encoding)}",
                    filepath, index, line=first,
                )
        texts = [t.rstrip("\r\n") for _, _, t, _ in block]
        if len(texts) < len(self.line_fields):
            want = " / ".join(",".join(s) for s in self.line_fields)
            return self.error(
                f"{relpath} line {first}: block has {len(texts)} line(s), expected {len(self.line_fields)} ({want}); "
                "fix: restore the missing line or separate blocks with exactly one blank line",
                filepath, index, line=first,
            )
        texts = texts[: len(self.line_fields) - 1] + ["\n".join(texts[len(self.line_fields) - 1 :])]
        record: dict[str, str] = {}
        for k, (spec, text) in enumerate(zip(self.line_fields, texts)):
            parts = text.split(",", len(spec) - 1)
            if len(parts) < len(spec):
                return self.error(
                    f"{relpath} line {first + k}: expected {len(spec)} comma-separated fields ({','.join(spec)}), "
                    f"found {len(parts)}; fix: add the missing ',' or change options.lines",
                    filepath, index, line=first,
                )
            record.update({n: p.strip() for n, p in zip(spec, parts)})
        return self.document(
            templates.render(self.template, record), filepath, index, line=first, title=record.get("title")
        )
