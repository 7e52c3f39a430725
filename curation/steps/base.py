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
from operator import ne

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from datatrove.utils.typeshelper import StatHints

from curation.batch import BATCHES, CHUNKS, emit, in_chunks, peek_stream
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


def removal(result) -> tuple[bool, str | None, dict]:
    """(keep, reason, extra metadata) of a filter's result: ``True``/``False``, ``(keep, reason)``
    (datatrove's contract) or ``(False, reason, {key: value})``, the fields a removed row carries
    besides ``removed_by`` and ``reason`` (decontamination's ``eval_item``)."""
    if isinstance(result, tuple) and len(result) == 3:
        return result
    keep, reason = get_filter_result(result)
    return keep, reason, {}


class CumedFilter(BaseFilter):
    """A datatrove filter whose removed documents always carry ``removed_by`` and ``reason``.

    Subclasses set ``name`` (a short snake_case id used as ``removed_by``) and implement
    ``filter``. Return ``(False, reason)`` to remove; a bare ``False`` records the step name as
    the reason; ``(False, reason, {key: value})`` adds fields to the removed row
    (``duplicate_of``, ``eval_item``...).

    A filter that judges a document from its text alone says so (``judges_texts = True``) and
    writes ``filter_texts``, one result per text of a chunk: it then takes the reader's
    ``DocumentBatch``es (``curation.batch``), and a chunk of Documents goes through the same method.
    """

    name = "filter"
    judges_texts = False  # True: ``filter_texts`` decides from the texts alone (no metadata, no id)

    @abstractmethod
    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        raise NotImplementedError

    def filter_texts(self, texts: list[str]) -> list:
        """The results of a chunk's texts, for a filter with ``judges_texts``."""
        raise NotImplementedError(f"{type(self).__name__} judges Documents (judges_texts = False)")

    def filter_batch(self, batch: list[Document]) -> list:
        if self.judges_texts:
            return self.filter_texts([doc.text for doc in batch])
        return super().filter_batch(batch)

    @property
    def takes_batches(self) -> bool:  # the reader's DocumentBatches (``curation.batch``)
        return self.judges_texts

    takes_chunks = True  # a stream of lists of Documents too (``curation.batch.in_chunks``)

    def _removals(self, results: list) -> list[tuple[int, str, dict]]:
        """(row, reason, extra fields) of each removed row of a chunk's results. Only the results
        not plainly kept (``True``: nearly all of them) are looked at one by one: no tuple and no
        counter update per kept document and filter."""
        out = []
        for i in [i for i, r in enumerate(results) if r is not True]:
            keep, reason, extra = removal(results[i])
            if not keep:
                out.append((i, reason or self.name, extra))
        return out

    def _count(self, total: int, reasons: list[str]) -> None:
        counts = Counter({StatHints.total: total, StatHints.forwarded: total - len(reasons),
                          StatHints.dropped: len(reasons)})
        counts.update(f"dropped_{reason.split(':')[0]}" for reason in reasons)
        add_counts(self, counts)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        kind, data = peek_stream(data)
        if kind == BATCHES and not self.judges_texts:
            kind, data = CHUNKS, (b.documents() for b in data)  # a subclass that reads Documents
        with self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext() as writer:
            if kind == BATCHES:
                for batch in data:
                    with self.track_time("batch"):
                        gone = self._removals(self.filter_texts(batch.texts))
                    self._count(len(batch), [reason for _, reason, _ in gone])
                    if gone:  # only the removed rows become Documents, for the exclusion writer
                        rows = [i for i, _, _ in gone]
                        write_removed(writer, [mark_removed(doc, self.name, reason, **extra) for doc, (_, reason, extra)
                                               in zip(batch.take(rows).documents(), gone)], rank)
                        batch = batch.without(rows)
                    if len(batch):
                        yield batch
                return
            # Documents go through in chunks (the stream's own, else ``batch_size`` when a filter
            # batches, else CHUNK) so that timing and counters are updated once per chunk, not per document.
            chunked, chunks = in_chunks(data, self.batch_size if self.batch_size > 1 else CHUNK)
            for batch in chunks:
                with self.track_time("batch"):
                    gone = self._removals(self.filter_batch(batch))
                self._count(len(batch), [reason for _, reason, _ in gone])
                if gone:
                    write_removed(writer, [mark_removed(batch[i], self.name, reason, **extra)
                                           for i, reason, extra in gone], rank)
                    dropped = {i for i, _, _ in gone}
                    batch = [doc for i, doc in enumerate(batch) if i not in dropped]
                yield from emit(batch, chunked)


class TextFilter(CumedFilter):
    """A filter that judges a document from its text alone: a subclass writes ``verdict(text)``,
    or ``filter_texts(texts)`` where one call for a whole chunk is cheaper. It takes the reader's
    ``DocumentBatch``es (``judges_texts``), and ``filter(doc)`` is the same judgement (an extra
    field of a removal lands in ``doc.metadata``, as datatrove's two-value contract has no room)."""

    judges_texts = True

    def verdict(self, text: str):
        raise NotImplementedError(f"{type(self).__name__}: write verdict(text) or filter_texts(texts)")

    def filter_texts(self, texts: list[str]) -> list:
        return list(map(self.verdict, texts))

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        result = self.filter_texts([doc.text])[0]
        if isinstance(result, tuple) and len(result) == 3:
            doc.metadata.update(result[2])
            return result[:2]
        return result


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

    takes_batches = True  # the reader's DocumentBatches: ``batch.texts`` rewritten (``curation.batch``)
    takes_chunks = True  # a stream of lists of Documents too (``curation.batch.in_chunks``)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        kind, data = peek_stream(data)
        if kind == BATCHES:
            for batch in data:
                with self.track_time("batch"):
                    new = self.transform_batch(batch.texts)
                    changed = sum(map(ne, batch.texts, new))  # an unchanged text is the same object: no compare
                    batch.texts = list(new)
                add_counts(self, {StatHints.total: len(batch), "changed": changed})
                yield batch
            return
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
                batch = batch.without(bad)
                if len(batch):
                    yield batch
