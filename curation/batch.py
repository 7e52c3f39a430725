"""A chunk of documents as columns, for stage A when every step takes whole chunks.

Stage A's steps judge or rewrite a document from its text alone: the reader, dropping read
errors, normalisation, PII, the Chinese filters, decontamination, near-dup signatures, Parquet.
Yet a ``Document`` per record (its metadata dict, one pass of each step's generator, the writer
taking the dict apart again into columns) cost about half of a dedup-only stage A on short QA
records, and ~20 % of the full one (250k QA records, stage A of the full steps: 10.8 s on
Documents, 8.6-8.9 s on batches, same run). When every step after the reader declares
``takes_batches``, the reader yields ``DocumentBatch``es instead (``RecipeReader(stream="batches")``):
a transform rewrites ``batch.texts``, a filter judges ``batch.texts`` (``CumedFilter.filter_texts``)
and hands on the batch less its removed rows; only removed rows become Documents, for their
exclusion writer.

``documents()`` is the way back: the same ``Document``s the reader yields in the per-document
mode (same ids, texts, metadata keys and values; the keys' order may differ, which nothing reads:
the metadata column is JSON with sorted keys), so a batch-mode build publishes the same content
hash. A metadata value ``None`` means "this document lacks the key" (readers never
store a ``None``: ``CumedReader.document`` drops them).

A step that needs a Document (a model filter reading a document's source, a user's own step)
does not take batches; then the Documents still travel a chunk at a time when every step takes
them (``takes_chunks``): the stream carries lists of ``Document``s (``in_chunks``), so each step
handles a chunk in one call and hands it on whole, where a stream of single documents costs every
step a generator pass and a re-chunking per document (~5 us a QA record over a 14-step stage A).
A step yields the form it is given: batches for batches, chunks for chunks, documents for
documents (a datatrove pipeline of users' own steps still works).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from datatrove.data import Document
from datatrove.utils.batching import batched


@dataclass
class DocumentBatch:
    ids: list[str]
    texts: list[str]
    meta: dict[str, list] = field(default_factory=dict)  # key -> a value per document; None: absent

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_documents(cls, docs: list[Document]) -> DocumentBatch:
        keys: dict[str, None] = {}
        for d in docs:
            keys.update(dict.fromkeys(d.metadata))
        return cls([d.id for d in docs], [d.text for d in docs],
                   {k: [d.metadata.get(k) for d in docs] for k in keys})

    def documents(self) -> list[Document]:
        keys = list(self.meta)
        return [Document(text=text, id=doc_id, metadata={k: v for k, v in zip(keys, values) if v is not None})
                for doc_id, text, *values in zip(self.ids, self.texts, *self.meta.values())]

    def take(self, rows: list[int]) -> DocumentBatch:
        return DocumentBatch(_pick(self.ids, rows), _pick(self.texts, rows),
                             {k: _pick(v, rows) for k, v in self.meta.items()})

    def without(self, rows: list[int]) -> DocumentBatch:
        """The batch less the rows ``rows`` (ascending), in order."""
        keep = np.ones(len(self), dtype=bool)
        keep[rows] = False
        return self.take(np.flatnonzero(keep).tolist())

    def column(self, key: str, default=None) -> list:
        """The values of one metadata key, ``default`` where a document lacks it."""
        values = self.meta.get(key)
        if values is None:
            return [default] * len(self)
        return values if default is None else [default if v is None else v for v in values]


def _pick(values: list, rows: list[int]) -> list:
    """``[values[i] for i in rows]`` in one ``map`` (a filter takes its kept rows from every column
    of every chunk: ~2x cheaper than the comprehension)."""
    return list(map(values.__getitem__, rows))


# What a stage-A stream carries (``peek_stream``): one Document per item, a list of Documents per
# item (``in_chunks``), or a ``DocumentBatch`` of columns per item.
DOCUMENTS, CHUNKS, BATCHES = "documents", "chunks", "batches"


def peek_stream(data: Iterable | None) -> tuple[str, Iterator]:
    """(what the stream carries, the same stream): ``DOCUMENTS``, ``CHUNKS`` or ``BATCHES``,
    from its first item (a stream is all of one kind: ``RecipeReader``); an empty one is
    ``DOCUMENTS``."""
    it = iter(data or ())
    first = next(it, None)
    if first is None:
        return DOCUMENTS, iter(())
    kind = BATCHES if isinstance(first, DocumentBatch) else CHUNKS if isinstance(first, list) else DOCUMENTS
    return kind, itertools.chain([first], it)


def in_chunks(data: Iterable | None, size: int) -> tuple[bool, Iterator[list[Document]]]:
    """(whether the stream carries chunks, the stream as lists of Documents): chunks as they come,
    single documents gathered ``size`` at a time. A step's results must not depend on how its
    documents are chunked (``docs/pipeline-contract.md``)."""
    kind, it = peek_stream(data)
    if kind == BATCHES:
        raise TypeError("in_chunks: a stream of DocumentBatches; take them as columns (takes_batches) "
                        "or read Documents (RecipeReader(stream='chunks'))")
    return kind == CHUNKS, (it if kind == CHUNKS else batched(it, size))


def emit(kept: list[Document], chunked: bool) -> Iterable:
    """What a step hands on for one chunk: the chunk itself (unless empty) in a chunked stream,
    else its documents one by one."""
    if chunked:
        return (kept,) if kept else ()
    return kept


def split_batch(batch: DocumentBatch, max_chars: int) -> Iterator[DocumentBatch]:
    """``batch`` in pieces of at most ``max_chars`` characters (a piece holds one document at least),
    as ``split_chunk`` sizes Documents: a reader's 2,000 papers would be ~60M characters at once in
    the filters' per-chunk arrays. A batch within the bound is yielded as it is."""
    lens = list(map(len, batch.texts))
    if sum(lens) <= max_chars:
        yield batch
        return
    start, chars = 0, 0
    for i, n in enumerate(lens):
        if i > start and chars + n > max_chars:
            yield batch.take(list(range(start, i)))
            start, chars = i, 0
        chars += n
    yield batch.take(list(range(start, len(lens))))


def split_chunk(docs: list[Document], max_docs: int, max_chars: int) -> Iterator[list[Document]]:
    """``docs`` in pieces of at most ``max_docs`` documents and ``max_chars`` characters (a piece
    holds one document at least): the reader's chunks sized for the steps' per-chunk memory."""
    piece, chars = [], 0
    for d in docs:
        n = len(d.text)
        if piece and (len(piece) == max_docs or chars + n > max_chars):
            yield piece
            piece, chars = [], 0
        piece.append(d)
        chars += n
    if piece:
        yield piece
