"""A chunk of documents as columns, for stage A when every step takes whole chunks.

A dedup-only build's stage A is read -> drop read errors -> near-dup signatures -> Parquet. None
of those steps looks at one document at a time, yet a ``Document`` per record (its metadata dict,
one pass of each step's generator, the writer taking the dict apart again into columns) cost
about half of the stage on short QA records. When every step after the reader declares
``takes_batches``, the reader yields ``DocumentBatch``es instead (``RecipeReader(batches=True)``)
and the steps work on the columns.

``documents()`` is the way back: the same ``Document``s the reader yields in the per-document
mode (same ids, texts, metadata keys and values; the keys' order may differ, which nothing reads:
the metadata column is JSON with sorted keys), so a batch-mode build publishes the same content
hash. A metadata value ``None`` means "this document lacks the key" (readers never
store a ``None``: ``CumedReader.document`` drops them).

Not a general columnar pipeline: steps that read or rewrite one document at a time (normalise,
PII, the filters, decontamination) run on Documents, and a recipe with any of them runs in the
per-document mode throughout.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from datatrove.data import Document


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
        return DocumentBatch([self.ids[i] for i in rows], [self.texts[i] for i in rows],
                             {k: [v[i] for i in rows] for k, v in self.meta.items()})

    def column(self, key: str, default=None) -> list:
        """The values of one metadata key, ``default`` where a document lacks it."""
        values = self.meta.get(key)
        if values is None:
            return [default] * len(self)
        return values if default is None else [default if v is None else v for v in values]


def peek_batches(data: Iterable | None) -> tuple[bool, Iterator]:
    """(whether the stream carries ``DocumentBatch``es, the same stream): a step that takes both
    looks at the first item; a stream is all batches or all documents (``RecipeReader``)."""
    it = iter(data or ())
    first = next(it, None)
    if first is None:
        return False, iter(())
    return isinstance(first, DocumentBatch), itertools.chain([first], it)
