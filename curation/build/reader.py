"""Reading a recipe's sources inside a datatrove stage: every (source, file) unit, spread over
the stage's tasks by size, with an independent count of what was read (the "nothing lost" check)."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from cumed.errors import CumedError
from curation.batch import BATCHES, CHUNKS, DOCUMENTS, split_batch, split_chunk
from curation.metrics import add_counts
from curation.readers import make_reader
from curation.recipe import Recipe, file_size, source_root
from curation.workfolder import folder, is_url, write_text

# A chunk of Documents in a ``chunks`` stream: every step holds one at a time, and the text
# features of one chunk stay cached across the nine filters (``filters._text``: 4,096 texts and
# 8M characters). 512: the largest batch a step asks for (decontamination, the model filters);
# 2M characters keep a chunk of long papers (~30k characters each) to ~70 of them.
CHUNK_DOCS = 512
CHUNK_CHARS = 2_000_000


class RecipeReader(PipelineStep):
    """Reads every (source, file) unit of a recipe; units are spread over ranks by size.

    Greedy largest-first bin packing keeps shards balanced (the 40 MB CMeKG file gets a shard
    of its own) and depends only on the recipe and the files, never on ``--workers``.
    """

    name = "recipe reader"
    type = "📖 - READER"

    def __init__(self, recipe: Recipe, counts_dir: str, stream: str = DOCUMENTS):
        """``stream``: what to yield (``curation.batch``): ``documents`` one by one, ``chunks`` of
        Documents (lists of at most ``CHUNK_DOCS`` documents and ``CHUNK_CHARS`` characters), or
        ``batches`` (``DocumentBatch``es of columns: a file reader's chunks, cut at ``CHUNK_CHARS``
        characters), for a stage whose every step takes them."""
        super().__init__()
        if stream not in (DOCUMENTS, CHUNKS, BATCHES):
            raise ValueError(f"RecipeReader: stream={stream!r}; one of {DOCUMENTS}, {CHUNKS}, {BATCHES}")
        self.counts_dir = str(counts_dir)
        self.stream = stream
        self.readers = {}
        units = []
        for s in recipe.sources:
            if not s.enabled:
                continue
            root = str(s.root) if is_url(s.root) else str(Path(s.root).resolve())
            try:
                # the source's path relative to its root (a URL path: to --raw or its own folder)
                self.readers[s.name] = make_reader({**_source_dict(s), "path": source_root(recipe.raw, s.path)[1]}, root)
            except (ValueError, FileNotFoundError) as e:
                raise CumedError(f"{recipe.path}: {e}") from e
            for f in s.files:
                units.append((file_size(f), s.name, s.relpath(f)))
        self.units = units

    def assignment(self, world_size: int) -> list[list[tuple[str, str]]]:
        bins = [[0, []] for _ in range(world_size)]
        for size, source, rel in sorted(self.units, key=lambda u: (-u[0], u[1], u[2])):
            target = min(range(world_size), key=lambda i: (bins[i][0], i))
            bins[target][0] += size
            bins[target][1].append((source, rel))
        return [sorted(b[1]) for b in bins]

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        counts: dict[str, int] = defaultdict(int)
        for source, rel in self.assignment(world_size)[rank]:
            reader = self.readers[source]
            # Readers take paths relative to their own data folder (the source's root + the
            # path's fixed prefix, ``relpath_prefix``).
            prefix = reader.relpath_prefix
            local = rel[len(prefix) + 1:] if prefix else rel
            # time spent reading only: a `with track_time()` around the loop would also count
            # what the downstream steps do while this generator waits at `yield`
            items = iter(reader.read_file(local) if self.stream == DOCUMENTS else
                         (piece for b in reader.read_chunks(local) for piece in split_batch(b, CHUNK_CHARS))
                         if self.stream == BATCHES else
                         (piece for b in reader.read_chunks(local)
                          for piece in split_chunk(b.documents(), CHUNK_DOCS, CHUNK_CHARS)))
            spent, n, chunks = 0.0, 0, 0
            while True:
                t0 = time.perf_counter()
                item = next(items, None)
                spent += time.perf_counter() - t0
                if item is None:
                    break
                n += 1 if self.stream == DOCUMENTS else len(item)
                chunks += 1
                yield item
            counts[source] += n
            self.stats.time_stats.update(spent, "file")
            add_counts(self, {"documents": n, f"read_{source}": n, "batches": chunks if self.stream != DOCUMENTS else 0})
        # durable on a local disk (as cumed.atomic.write_json); one put on object storage
        write_text(folder(self.counts_dir), f"{rank:05d}.json", json.dumps(counts, ensure_ascii=False), durable=True)


def _source_dict(s) -> dict:
    return {"name": s.name, "reader": s.reader, "path": s.path, "category": s.category, "department": s.department,
            "license": s.license, "options": s.options}


