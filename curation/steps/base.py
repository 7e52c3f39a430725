"""Base classes for cumed steps: the loop, the stats and the removal bookkeeping live here.

A filter writes one method, ``filter(doc) -> bool | tuple[bool, str]`` (datatrove's contract);
a transform writes ``transform(text) -> str``. The base classes

- stamp every removed document with ``removed_by`` (the step's ``name``) and ``reason`` before
  it goes to the exclusion writer, so "documents read = kept + removed" holds by construction;
- count removals per reason and, for transforms, how many documents a step actually changed
  (users of other tools found their conversion silently did nothing: we report it).
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections import Counter

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from datatrove.utils.typeshelper import StatHints

from curation.batch import BATCHES, emit, in_chunks, peek_stream
from curation.metrics import add_counts

CHUNK = 256  # documents per timing/counter update of a step that works one document at a time


def mark_removed(doc: Document, step: str, reason: str, **extra) -> Document:
    doc.metadata["removed_by"] = step
    doc.metadata["reason"] = reason
    doc.metadata.update(extra)
    return doc


def write_removed(writer, docs: list[Document], rank: int) -> None:
    """A chunk's removed documents to a step's exclusion writer (None: nowhere): in one call to
    cumed's batch writer (``RankParquetWriter.write_batch``), else one ``write`` each."""
    if writer is None or not docs:
        return
    if hasattr(writer, "write_batch"):
        writer.write_batch(docs, rank)
    else:
        for doc in docs:
            writer.write(doc, rank)


class CumedFilter(BaseFilter):
    """A datatrove filter whose removed documents always carry ``removed_by`` and ``reason``.

    Subclasses set ``name`` (a short snake_case id used as ``removed_by``) and implement
    ``filter``. Return ``(False, reason)`` to remove; a bare ``False`` records the step name as
    the reason. Extra fields for the removed row (``duplicate_of``, ``similarity``...) may be put
    into ``doc.metadata`` by ``filter`` itself before returning.
    """

    name = "filter"

    @abstractmethod
    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        raise NotImplementedError

    takes_chunks = True  # a stream of lists of Documents too (``curation.batch.in_chunks``)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        # Documents go through in chunks (the stream's own, else ``batch_size`` when a filter
        # batches, else CHUNK) so that timing and counters are updated once per chunk, not per document.
        chunked, chunks = in_chunks(data, self.batch_size if self.batch_size > 1 else CHUNK)
        with self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext() as writer:
            for batch in chunks:
                with self.track_time("batch"):
                    results = self.filter_batch(batch)
                # only the documents not plainly kept (``True``: nearly all of them) are looked at
                # one by one: no tuple and no counter update per kept document and filter
                removed = []
                for i in [i for i, r in enumerate(results) if r is not True]:
                    keep, reason = get_filter_result(results[i])
                    if not keep:
                        removed.append(mark_removed(batch[i], self.name, reason or self.name))
                counts = Counter({StatHints.total: len(batch), StatHints.forwarded: len(batch) - len(removed),
                                  StatHints.dropped: len(removed)})
                counts.update(f"dropped_{doc.metadata['reason'].split(':')[0]}" for doc in removed)
                add_counts(self, counts)
                if removed:
                    write_removed(writer, removed, rank)
                    gone = {id(doc) for doc in removed}
                    batch = [doc for doc in batch if id(doc) not in gone]
                yield from emit(batch, chunked)


class CumedTransform(PipelineStep):
    """A step that rewrites ``doc.text``; counts how many documents it changed.

    Subclasses set ``name`` and implement ``transform(text) -> str``. A transform that wants to
    count sub-events (e.g. PII matches per type) calls ``self.stat_update(label, value=n)``.
    """

    name = "transform"
    type = "✂️ - FORMAT"

    @abstractmethod
    def transform(self, text: str) -> str:
        raise NotImplementedError

    def transform_batch(self, texts: list[str]) -> list[str]:
        """``transform`` of every text of a chunk; a step overrides it where one call for the
        whole chunk is cheaper (``Normalize``), with the same results and counts."""
        return [self.transform(t) for t in texts]

    takes_chunks = True  # a stream of lists of Documents too (``curation.batch.in_chunks``)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        chunked, chunks = in_chunks(data, CHUNK)
        for batch in chunks:
            changed = 0
            with self.track_time("batch"):
                for doc, new in zip(batch, self.transform_batch([doc.text for doc in batch])):
                    if new != doc.text:
                        changed += 1
                        doc.text = new
            add_counts(self, {StatHints.total: len(batch), "changed": changed})
            yield from emit(batch, chunked)


class DropReadErrors(CumedFilter):
    """First step of every pipeline: records a reader could not parse become removed rows.

    Readers never silently skip a bad record; they yield it with ``metadata["read_error"]``
    set to a message naming file, record and field. This step moves it to ``removed``.
    """

    name = "reader"
    takes_batches = True  # the reader's DocumentBatches too (``curation.batch``)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        err = doc.metadata.get("read_error")
        if err:
            return False, f"read_error: {err}"
        return True

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        kind, data = peek_stream(data)
        if kind != BATCHES:
            yield from super().run(data, rank, world_size)
            return
        # the same removals, reasons and counters as ``filter`` one document at a time
        with self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext() as writer:
            for batch in data:
                errors = batch.meta.get("read_error") or ()
                bad = [i for i, err in enumerate(errors) if err]
                add_counts(self, {StatHints.total: len(batch), StatHints.forwarded: len(batch) - len(bad),
                                  StatHints.dropped: len(bad), "dropped_read_error": len(bad)})
                if not bad:
                    yield batch
                    continue
                write_removed(writer, [mark_removed(d, self.name, f"read_error: {d.metadata['read_error']}")
                                       for d in batch.take(bad).documents()], rank)
                bad_rows = set(bad)
                batch = batch.take([i for i in range(len(batch)) if i not in bad_rows])
                if len(batch):
                    yield batch
