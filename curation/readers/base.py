"""What every cumed reader shares: the document contract, read errors, encodings, empty files.

A cumed reader is a datatrove ``BaseDiskReader`` (``data_folder`` + ``glob_pattern``; files are
sharded across ranks by datatrove). Subclasses implement ``read_records(filepath)`` and build
documents with ``self.document(...)`` / ``self.error(...)``; ``read_file`` adds the two checks
every shape needs (empty file, stable ids).

Rules every reader follows (docs/pipeline-contract.md):

- ``id = stable_id(source, relpath, record_key)``: ``relpath`` is the file's path relative to the
  raw root (not to ``data_folder``), ``record_key`` a native id when the source has one, else the
  record index. A native id seen twice in one file falls back to ``"<id>#<index>"`` so ids stay
  unique, and the document says so (``duplicate_native_id``).
- A record that cannot be parsed is never skipped: it becomes a document with empty text and
  ``metadata["read_error"]`` naming file, line, field and the fix; ``DropReadErrors`` moves it to
  the removed rows. A problem with the whole file (wrong template for its columns, undecodable
  header) raises ``ValueError`` instead, because no record of it could be right.
- An empty file gives one read-error record (``empty file``), so nothing disappears silently.

It deliberately does not clean text (that is the steps' job) beyond undoing the source format.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.readers.base import BaseDiskReader
from datatrove.utils.batching import batched

from curation.batch import DocumentBatch
from curation.document import CATEGORIES
from cumed.ids import id_prefix, stable_id_after

# Encodings seen in the raw data. GB18030 (not GBK: strict GBK fails on two sources) for the
# Toyhom and 39health files; utf-8-sig for files written with a BOM.
ENCODINGS = ("gb18030", "utf-8", "utf-8-sig")
# Records per ``DocumentBatch`` a reader yields in batch mode (``read_chunks``): the signature
# step's and the Parquet writer's own batch sizes are 2000 and 1000, and a chunk this size keeps
# the per-chunk work (a few list comprehensions) well below the per-record work.
CHUNK_RECORDS = 2000


def one_of(choices: Iterable[str]) -> str:
    """``a, b or c`` for error messages."""
    items = [str(c) for c in choices]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def check_choice(value, choices: Iterable[str], what: str, source: str) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r} in source {source}; use {one_of(choices)}")


def suggest_encoding(raw: bytes, tried: str) -> str:
    """The fix for bytes that did not decode as ``tried``: name an encoding that works."""
    for enc in ENCODINGS:
        if enc == tried or (enc.startswith("utf-8") and tried.startswith("utf-8")):
            continue
        try:
            raw.decode(enc)
        except UnicodeDecodeError:
            continue
        return f"set options.encoding: {enc} (this line decodes as {enc})"
    return "repair the bytes in the source or drop the record"


class CumedReader(BaseDiskReader):
    """Base of the cumed readers: builds Documents with the cumed metadata and stable ids.

    Args:
        data_folder: folder (any fsspec path) the ``glob_pattern`` is relative to.
        source: recipe source name; becomes ``metadata["source"]`` and the id prefix.
        category: Table-1 category (``curation.document.CATEGORIES``).
        department: default ``metadata["department"]`` when a record has none.
        license: copied to ``metadata["license"]`` when given.
        synthetic: mark every document ``metadata["synthetic"] = True`` (model-generated text).
        relpath_prefix: path of ``data_folder`` relative to the raw root, so ids and
            ``metadata["file"]`` do not depend on how a recipe path was split.
        **disk_kwargs: datatrove's ``BaseDiskReader`` arguments (glob_pattern, limit, ...).
    """

    type = "📖 - READER"
    name = "cumed reader"
    # reader-specific option names accepted from a recipe's ``options:``
    options: tuple[str, ...] = ()

    def __init__(
        self,
        data_folder,
        source: str,
        category: str,
        department: str = "",
        license: str | None = None,
        synthetic: bool = False,
        relpath_prefix: str = "",
        **disk_kwargs,
    ):
        super().__init__(data_folder, **disk_kwargs)
        if not source:
            raise ValueError("a reader needs a source name (the recipe's sources[].name)")
        check_choice(category, CATEGORIES, "category", source)
        self.source = source
        self.category = category
        self.department = department or ""
        self.license = license
        self.synthetic = bool(synthetic)
        self.relpath_prefix = relpath_prefix.strip("/")
        self._seen_keys: set[str] = set()
        self._id_file, self._id_prefix = None, b""  # record_id's per-file part of the id hash

    # -- helpers for subclasses --------------------------------------------------------------
    def check_encoding(self, encoding: str) -> str:
        check_choice(encoding, ENCODINGS, "encoding", self.source)
        return encoding

    def relpath(self, filepath: str) -> str:
        filepath = filepath.lstrip("/")
        return f"{self.relpath_prefix}/{filepath}" if self.relpath_prefix else filepath

    def record_id(self, relpath: str, index: int | str, native=None) -> tuple[str, dict]:
        """Id from the native key when there is one, else the record index; unique per file.

        Native keys live in their own namespace (``id=<key>``) so that a file where only some
        records carry a native id cannot collide a native "5" with the record at index 5.
        """
        extra = {}
        if native is not None:
            native = str(native).strip()
        if not native:  # none, or blank once stripped
            key = index
        else:
            extra["native_id"] = native
            key, again = self.native_key(native, index)
            if again:
                extra["duplicate_native_id"] = True
        if relpath != self._id_file:
            self._id_file, self._id_prefix = relpath, id_prefix(self.source, relpath)
        return stable_id_after(self._id_prefix, self.source, key), extra

    def native_keys(self, natives: list[str], indices: list) -> tuple[list[str], list | None]:
        """``native_key`` of each record of a batch, in order: (keys, None) when none was seen
        before in the file nor repeats in the batch (the usual: three set operations in C, no
        Python call per record), else (keys, a list with True where a key repeats)."""
        batch = set(natives)
        if len(batch) == len(natives) and self._seen_keys.isdisjoint(batch):
            self._seen_keys |= batch
            return ["id=" + n for n in natives], None
        keys, repeats = [], [None] * len(natives)
        for i, (native, index) in enumerate(zip(natives, indices)):
            key, again = self.native_key(native, index)
            keys.append(key)
            if again:
                repeats[i] = True
        return keys, repeats

    def native_key(self, native: str, index: int | str) -> tuple[str, bool]:
        """The id key of the record at ``index`` whose native id is ``native`` (stripped, not
        blank): ``id=<native>``, or ``id=<native>#<index>`` when the file had that id before
        (then True: the document says ``duplicate_native_id``)."""
        seen = len(self._seen_keys)
        self._seen_keys.add(native)
        if len(self._seen_keys) == seen:  # seen before; one probe of a set of a whole file's ids, not two
            return f"id={native}#{index}", True
        return f"id={native}", False

    def document(self, text: str, filepath: str, index: int | str, native=None, department=None, **meta) -> Document:
        relpath = self.relpath(filepath)
        doc_id, extra = self.record_id(relpath, index, native)
        metadata = {
            "source": self.source,
            "category": self.category,
            "department": (department or "").strip() or self.department,
            "file": relpath,
        }
        if self.license:
            metadata["license"] = self.license
        if self.synthetic:
            metadata["synthetic"] = True
        metadata.update(extra)
        for k, v in meta.items():  # a loop, not a filtered dict to update with: 0.15 us less a document
            if v is not None:
                metadata[k] = v
        return Document(text=text, id=doc_id, metadata=metadata)

    def error(self, message: str, filepath: str, index: int | str, **meta) -> Document:
        """A record that could not be read: empty text, ``read_error`` = message."""
        doc = self.document("", filepath, f"read_error@{index}", **meta)
        doc.metadata["read_error"] = message
        return doc

    # -- the datatrove hook ------------------------------------------------------------------
    def read_file(self, filepath: str) -> DocumentsPipeline:
        empty = self._start_file(filepath)
        if empty is not None:
            yield empty
            return
        yield from self.read_records(filepath)

    def read_chunks(self, filepath: str) -> Iterator[DocumentBatch]:
        """``read_file``'s documents as ``DocumentBatch``es (``RecipeReader``'s batch mode)."""
        empty = self._start_file(filepath)
        if empty is not None:
            yield DocumentBatch.from_documents([empty])
            return
        yield from self.record_chunks(filepath)

    def _start_file(self, filepath: str) -> Document | None:
        """Per-file state reset; the read error of an empty file, else None."""
        self._seen_keys = set()
        with self.data_folder.open(filepath, "rb") as f:
            head = f.read(1 << 16)
        if not head.strip() and len(head) < (1 << 16):
            return self.error(f"{self.relpath(filepath)}: empty file; fix: remove it from the recipe path or restore "
                              "its content", filepath, 0)
        return None

    @abstractmethod
    def read_records(self, filepath: str) -> Iterator[Document]:
        """Yield one Document per record of ``filepath`` (relative to ``data_folder``)."""
        raise NotImplementedError

    def record_chunks(self, filepath: str) -> Iterator[DocumentBatch]:
        """``read_records`` in batches of ``CHUNK_RECORDS``; a reader that can build its batches
        column by column (``jsonl``, ``parquet``, ``hf``) overrides this and derives
        ``read_records`` from it."""
        for docs in batched(self.read_records(filepath), CHUNK_RECORDS):
            yield DocumentBatch.from_documents(docs)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if not self.paths_file and not self.data_folder.list_files(recursive=self.recursive, glob_pattern=self.glob_pattern):
            raise FileNotFoundError(
                f"source {self.source}: no file matches {self.glob_pattern!r} under {self.data_folder.path}; "
                "check --raw (or CUMED_RAW) and the recipe path"
            )
        yield from super().run(data, rank, world_size)


def lookup_lines(path: str | Path, encoding: str = "utf-8") -> Iterator[str]:
    """The decodable lines of a side file that only feeds a lookup (a term list, a lexicon);
    a line with bad bytes is skipped, not fatal: the reader of the same file, where there is
    one, reports that line as a read error of its document."""
    with open(path, "rb") as f:
        for _, _, text, err in decoded_lines(f, encoding):
            if err is None:
                yield text


def decoded_lines(f, encoding: str) -> Iterator[tuple[int, bytes, str, UnicodeDecodeError | None]]:
    """(line number, raw bytes, text, decode error) per physical line of a binary file.

    Decoding line by line keeps one bad line from killing the file. Splitting bytes on b"\\n" is
    safe for UTF-8 and GB18030 (0x0A is never part of a multi-byte character in either). A bad
    line is decoded with U+FFFD replacements so parsers stay in step; the caller reports it.
    """
    for lineno, raw in enumerate(f, 1):
        try:
            text = raw.decode(encoding)
            err = None
        except UnicodeDecodeError as e:
            text = raw.decode(encoding, errors="replace")
            err = e
        if lineno == 1:
            text = text.lstrip("\ufeff")
        yield lineno, raw, text, err


def line_blocks(f, size: int = 1 << 20) -> Iterator[bytes]:
    """The bytes of a binary file in blocks of about ``size`` bytes that end at a line end (the
    last block: at the end of the file), for readers that parse many lines with one C call."""
    rest = b""
    while True:
        chunk = f.read(size)
        if not chunk:
            break
        chunk = rest + chunk if rest else chunk
        cut = chunk.rfind(b"\n") + 1
        if cut:
            yield chunk[:cut]
        rest = chunk[cut:]
    if rest:
        yield rest
