"""``kg_triples``: a knowledge graph verbalised as one readable document per subject.

Two input shapes:

- ``tsv``: ``subject<TAB>predicate<TAB>object`` lines (CMeKG ``cmekg_triples.tsv``: 967,409
  triples over 27,403 subjects, 40 MB; a ``subject predicate object`` header line is skipped);
- ``jsonl``: one subject per line, ``{"subject": ..., "relations": {predicate: [objects]}}``
  (the derived ``cmekg_urology_andrology_subjects.jsonl``).

``format: auto`` picks by file extension (``.jsonl``/``.json`` → jsonl, else tsv). A subject
becomes::

    前列腺炎
    就诊科室：泌尿外科
    常见症状：尿频、尿急、...

predicates in the order they first appear, objects of one predicate de-duplicated and joined
with ``、``. ``department`` is the ``就诊科室`` objects joined with ``、`` (``department_predicate``
to change it). The record key is the subject (a native id).

Bounded memory: the real TSV is grouped by subject (every subject's triples are contiguous; we
checked: 27,403 runs for 27,403 subjects), so a streaming group-by holds one subject at a time.
``grouped: auto`` (default) verifies that in a first streaming pass (it holds the set of subject
names, not the triples); a file that is not grouped is sorted externally: chunks of
``sort_chunk_lines`` triples are sorted by (subject, line) into temporary files and merged, so
memory stays at one chunk whatever the file size, and predicate order is still the file order.
``grouped: true`` skips the check (a subject that reappears later then becomes a second document
with the same subject and a distinct id); ``grouped: false`` always sorts.

A malformed line (not three tab-separated fields, empty subject, bad bytes) is a read-error
record naming the line.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator

from datatrove.data import Document

from curation.readers.base import CumedReader, check_choice, decoded_lines, line_blocks, suggest_encoding

FORMATS = ("auto", "tsv", "jsonl")
GROUPED = ("auto", True, False)
HEADER = ["subject", "predicate", "object"]
# the first field of every line with exactly three tab-separated fields (``_triples``' valid lines)
_SUBJECT_FIELD = re.compile(r"^([^\t\n]*)\t[^\t\n]*\t[^\t\n]*$", re.M)


def verbalise(subject: str, relations: dict[str, list[str]]) -> str:
    lines = [subject]
    for pred, objs in relations.items():
        objs = [o for o in objs if o]
        if objs:
            lines.append(f"{pred}：{'、'.join(objs)}")
    return "\n".join(lines)


class KgTriplesReader(CumedReader):
    name = "🕸 kg triples"
    options = ("encoding", "format", "grouped", "department_predicate", "sort_chunk_lines")

    def __init__(
        self,
        data_folder,
        encoding: str = "utf-8",
        format: str = "auto",
        grouped: str | bool = "auto",
        department_predicate: str = "就诊科室",
        sort_chunk_lines: int = 500_000,
        **kwargs,
    ):
        super().__init__(data_folder, **kwargs)
        self.encoding = self.check_encoding(encoding)
        check_choice(format, FORMATS, "format", self.source)
        check_choice(grouped, GROUPED, "grouped value", self.source)
        self.format = format
        self.grouped = grouped
        self.department_predicate = department_predicate
        self.sort_chunk_lines = int(sort_chunk_lines)

    def subject_document(self, subject: str, relations: dict[str, list[str]], filepath: str, index: int, line: int) -> Document:
        dept = "、".join(relations.get(self.department_predicate, []))
        n = sum(len(v) for v in relations.values())
        return self.document(
            verbalise(subject, relations), filepath, index, native=subject, department=dept,
            title=subject, line=line, n_triples=n,
        )

    def read_records(self, filepath: str) -> Iterator[Document]:
        fmt = self.format
        if fmt == "auto":
            fmt = "jsonl" if filepath.lower().endswith((".jsonl", ".json")) else "tsv"
        yield from (self._read_jsonl(filepath) if fmt == "jsonl" else self._read_tsv(filepath))

    # -- jsonl: {subject, relations} -----------------------------------------------------------
    def _read_jsonl(self, filepath: str) -> Iterator[Document]:
        relpath = self.relpath(filepath)
        index = 0
        with self.data_folder.open(filepath, "rb") as f:
            for lineno, raw, text, err in decoded_lines(f, self.encoding):
                if not text.strip():
                    continue
                try:
                    if err is not None:
                        raise ValueError(f"bytes {err.object[err.start:err.end]!r} are not valid {self.encoding}; fix: {suggest_encoding(raw, self.encoding)}")
                    rec = json.loads(text)
                    subject = str(rec["subject"]).strip()
                    rels = rec.get("relations") or {}
                    if not subject or not isinstance(rels, dict):
                        raise ValueError("empty 'subject' or 'relations' is not an object")
                    relations = {str(p): list(dict.fromkeys(str(o).strip() for o in (objs if isinstance(objs, list) else [objs]))) for p, objs in rels.items()}
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    what = f"missing field {e}" if isinstance(e, KeyError) else str(e)
                    yield self.error(
                        f"{relpath} line {lineno}: {what}; fix: each line must be {{\"subject\": ..., \"relations\": {{predicate: [objects]}}}}",
                        filepath, index, line=lineno,
                    )
                else:
                    with self.track_time():  # the document, not what downstream steps do with it
                        doc = self.subject_document(subject, relations, filepath, index, lineno)
                    yield doc
                index += 1

    # -- tsv triples ---------------------------------------------------------------------------
    def _triples(self, filepath: str, errors: list) -> Iterator[tuple[str, str, str, int]]:
        """(subject, predicate, object, line); malformed lines go to ``errors`` as (line, message)."""
        relpath = self.relpath(filepath)
        with self.data_folder.open(filepath, "rb") as f:
            for lineno, raw, text, err in decoded_lines(f, self.encoding):
                text = text.rstrip("\r\n")
                if not text.strip():
                    continue
                if err is not None:
                    errors.append((lineno, f"{relpath} line {lineno}: bytes {err.object[err.start:err.end]!r} are not valid {self.encoding}; fix: {suggest_encoding(raw, self.encoding)}"))
                    continue
                parts = text.split("\t")
                if lineno == 1 and [p.strip().lower() for p in parts] == HEADER:
                    continue
                if len(parts) != 3 or not parts[0].strip():
                    errors.append((lineno, f"{relpath} line {lineno}: expected subject<TAB>predicate<TAB>object, found {len(parts)} field(s){' with an empty subject' if len(parts) == 3 else ''}; fix: repair or drop the line"))
                    continue
                yield parts[0].strip(), parts[1].strip(), parts[2].strip(), lineno

    def is_grouped(self, filepath: str) -> bool:
        """Whether every subject's triples are contiguous (the subjects of ``_triples``' valid lines).

        Read in blocks: one regex call finds the subject field of every three-field line of a
        block, and runs of equal subjects collapse in C (``itertools.groupby``), so only a run
        (a subject: 27 k for CMeKG's 967 k lines) costs Python work; ~4x faster than parsing
        every line (``_triples``), which a block that does not decode falls back to, as does
        ``utf-8-sig`` (a BOM at a line's start is dropped line by line, not block by block)."""
        if self.encoding == "utf-8-sig":
            return self._subjects_grouped(s for s, _, _, _ in self._triples(filepath, []))

        def subjects():
            with self.data_folder.open(filepath, "rb") as f:
                for k, block in enumerate(line_blocks(f)):
                    text = block.decode(self.encoding)  # UnicodeDecodeError: line by line, below
                    if k == 0:  # as _triples: a BOM and a header line are not subjects
                        text = text.lstrip("\ufeff")
                        first, _, rest = text.partition("\n")
                        if [p.strip().lower() for p in first.rstrip("\r").split("\t")] == HEADER:
                            text = rest
                    yield from filter(None, map(str.strip, _SUBJECT_FIELD.findall(text)))

        try:
            return self._subjects_grouped(subjects())
        except UnicodeDecodeError:
            return self._subjects_grouped(s for s, _, _, _ in self._triples(filepath, []))

    @staticmethod
    def _subjects_grouped(subjects: Iterable[str]) -> bool:
        seen: set[str] = set()
        for subject, _ in itertools.groupby(subjects):
            if subject in seen:
                return False
            seen.add(subject)
        return True

    def _read_tsv(self, filepath: str) -> Iterator[Document]:
        grouped = self.grouped
        if grouped == "auto":
            grouped = self.is_grouped(filepath)
        errors: list[tuple[int, str]] = []
        if grouped:
            yield from self._group(self._triples(filepath, errors), filepath, errors)
        else:
            with tempfile.TemporaryDirectory(prefix="cumed-kg-") as tmp:
                yield from self._group(self._sorted(self._triples(filepath, errors), tmp), filepath, errors)

    def _group(self, triples: Iterable[tuple[str, str, str, int]], filepath: str, errors: list) -> Iterator[Document]:
        index = 0
        for subject, group in itertools.groupby(triples, key=lambda t: t[0]):
            relations: dict[str, list[str]] = {}
            first_line = None
            for _, pred, obj, line in group:
                first_line = first_line or line
                objs = relations.setdefault(pred, [])
                if obj not in objs:
                    objs.append(obj)
            # errors found while reading this group are reported as soon as they are known
            for lineno, msg in errors:
                yield self.error(msg, filepath, f"line{lineno}", line=lineno)
                index += 1
            errors.clear()
            with self.track_time():  # the document, not what downstream steps do with it
                doc = self.subject_document(subject, relations, filepath, index, first_line)
            yield doc
            index += 1
        for lineno, msg in errors:
            yield self.error(msg, filepath, f"line{lineno}", line=lineno)
        errors.clear()

    def _sorted(self, triples: Iterator[tuple[str, str, str, int]], tmp: str) -> Iterator[tuple[str, str, str, int]]:
        """External sort by (subject, line): sorted runs on disk, merged lazily."""
        paths = []
        while True:
            chunk = sorted(itertools.islice(triples, self.sort_chunk_lines), key=lambda t: (t[0], t[3]))
            if not chunk:
                break
            path = os.path.join(tmp, f"run{len(paths):05d}.jsonl")
            with open(path, "w", encoding="utf-8") as out:
                for t in chunk:
                    out.write(json.dumps(t, ensure_ascii=False) + "\n")
            paths.append(path)
        files = [open(p, encoding="utf-8") for p in paths]
        try:
            runs = [(tuple(json.loads(line)) for line in fh) for fh in files]
            yield from heapq.merge(*runs, key=lambda t: (t[0], t[3]))
        finally:
            for fh in files:
                fh.close()
