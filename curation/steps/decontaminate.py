"""Remove training documents that contain text from an evaluation set.

Spans are character n-grams (``n`` = 20) of the canonical form (NFKC, Traditional->Simplified,
no punctuation or whitespace; see ``curation.dedup``). A document is contaminated by an
evaluation item when it shares with it at least ``min_spans`` spans (default 50: a shared run
of ~70 characters) or at least ``min_coverage`` of the item's spans (default 0.5: a short item,
such as a 30-character CMID question, pasted whole). Removed with reason
``eval_overlap: <set>:<item id>`` (the item sharing the most spans) and ``metadata["eval_item"]``.

Why not "any single shared span": on the real Toyhom CSV, 18 % of the consultations share at
least one 20-character span with Huatuo-26M-test or DISC-CMD answers: both come from the same
consultation sites, whose doctors paste the same closing sentences
(``建议患者在日常生活中要留意饮食并且要始终保持...``). Those runs are 20-45 spans long; the
two thresholds above remove 2 of 7,644 Toyhom documents (one shares a 150-character paragraph
with Huatuo-26M item 1408) and every planted copy of an item.

Why ``n = 20`` characters: about 10-13 Chinese words, the same order as the 13-token spans of
GPT-3's decontamination (Brown et al. 2020) and the 50-character window of Llama 2 / the
8-to-13-gram checks in Chinese LLM reports scaled down for denser script. Short spans hit
boilerplate shared by unrelated answers (``您好根据您的描述`` is 8 characters; Toyhom and
Huatuo-26M share dozens of 12-16 character openers and closers). Longer n
(25+) misses items pasted with a few edits (an edit every 25 characters breaks every span).

Spans that occur in more than ``max_items_per_span`` distinct evaluation items are template
text, not content, and are ignored.

Documents are checked in batches (``batch_size``, one numpy pass each: ~15 MB/s on Toyhom on
the shared 2-core box, vs ~7 MB/s one by one). The index is a sorted uint64 array of span hashes (~16 bytes per span: ~2 M spans for the three
sets) and is built on first use, so the step stays cheap to pickle to datatrove workers.
A document's spans are looked up in a hash table of the keys (``span_lookup``: one memory access
per span, ~97 % of them no key, instead of a ~20-step binary search, which was ~85 % of the step
at first; a bitmap of the keys' top bits was the next answer): the decisions are exactly those of
searching every span (test: ``test_compiled_span_lookup_finds_what_searching_every_span_finds``).
For named sets (read from files) the built index is cached on disk, keyed by the sha256 of the
evaluation files, the parameters and the canonical-form code (``$CUMED_CACHE`` or
``~/.cache/cumed``, ``decontaminate/<key>/``, written to a temporary folder and renamed into
place): the 8 shard tasks of a build memory-map it (``np.load(mmap_mode="r")``) instead of
each re-reading the JSON files and re-hashing ~2 M spans. ``cache=False`` turns this off.
Not done: fuzzy (edit-distance) overlap; a paraphrased item passes. Near-dup dedup against
the evaluation texts catches whole-item copies with small edits.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from cumed.cache import cache_root
from cumed.eval_sets import eval_set_files, load_eval_set
from cumed.hashing import sha256_file
from curation.dedup.canonical import canonical, canonical_batch, codepoints, window_hashes
from curation.steps.base import TextFilter

DEFAULT_SETS = ("huatuo26m_test", "cmb_clin", "disc_eval")
INDEX_FORMAT = 1  # bump when the cached index layout or its meaning changes
class Decontaminate(TextFilter):
    name = "decontaminate"

    def __init__(
        self,
        eval_sets: Sequence[str] | Mapping[str, Iterable[tuple[str, str]]] = DEFAULT_SETS,
        raw: str | Path | None = None,
        paths: Mapping[str, str | Sequence[str]] | None = None,
        n: int = 20,
        max_items_per_span: int | None = 3,
        min_spans: int | None = 50,
        min_coverage: float | None = 0.5,
        exclusion_writer=None,
        batch_size: int = 512,
        cache: bool = True,
    ):
        """``eval_sets``: names of sets in ``cumed.eval_sets`` (read from ``raw``), or a mapping
        name -> iterable of (item id, text). ``min_spans`` / ``min_coverage``: see the module doc;
        ``None`` disables that rule (both ``None``: one shared span is enough). ``paths``: a named
        set's files (relative to ``raw``, or absolute) instead of its defaults (``cumed.eval_sets.EVAL_FILES``,
        the seed's layout), e.g. ``{cmb_clin: [evals/cmb.json]}``."""
        super().__init__(exclusion_writer=exclusion_writer, batch_size=batch_size)
        if not isinstance(eval_sets, Mapping) and raw is None:
            raise ValueError("Decontaminate(eval_sets=[...names]) needs raw= the raw data folder, or pass {name: items}")
        self.eval_sets = eval_sets if not isinstance(eval_sets, Mapping) else {k: list(v) for k, v in eval_sets.items()}
        self.raw = raw
        self.paths = dict(paths or {})
        unknown = set(self.paths) - set(eval_sets if not isinstance(eval_sets, Mapping) else ())
        if unknown:
            raise ValueError(f"decontaminate: paths names {', '.join(sorted(unknown))}, not in eval_sets "
                             f"({', '.join(self.eval_sets)}); add it to eval_sets or drop it from paths")
        self.n, self.max_items_per_span = n, max_items_per_span
        self.min_spans, self.min_coverage = min_spans, min_coverage
        self.cache = cache
        self._keys = None
        self._table = None

    @classmethod
    def side_files(cls, eval_sets: Sequence[str] | Mapping = DEFAULT_SETS, raw: str | Path | None = None,
                   paths: Mapping | None = None, **_options) -> list[dict]:
        """The evaluation files a step built with these options reads (none for in-memory sets).

        The build hashes them into its work folder key and lineage: a re-run after an evaluation
        set changed must not resume from outputs decontaminated against the old set."""
        if isinstance(eval_sets, Mapping):
            return []
        paths = paths or {}
        return [{"role": "eval_set", "name": name, "path": path, "root": raw,
                 "key": f"steps.decontaminate.paths.{name}"}
                for name in eval_sets for path in eval_set_files(name, raw, paths.get(name))]

    # --------------------------------------------------------------- index
    def _items(self):
        if isinstance(self.eval_sets, Mapping):
            for name, items in self.eval_sets.items():
                for i, t in items:
                    yield name, str(i), t
        else:
            for name in self.eval_sets:
                for i, t in load_eval_set(name, self.raw, self.paths.get(name)):
                    yield name, i, t

    def cache_key(self) -> str | None:
        """sha256 over the evaluation files' sha256, the index parameters and the canonical-form
        code; ``None`` for in-memory sets (built each time: they are small and have no files)."""
        if isinstance(self.eval_sets, Mapping):
            return None
        import importlib

        canonical_mod = importlib.import_module("curation.dedup.canonical")

        parts = {
            "format": INDEX_FORMAT,
            "sets": [[name, [sha256_file(f) for f in eval_set_files(name, self.raw, self.paths.get(name))]] for name in self.eval_sets],
            "n": self.n,
            "max_items_per_span": self.max_items_per_span,
            "canonical": sha256_file(canonical_mod.__file__),
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def _load_cached(self, folder: Path) -> bool:
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            keys = np.load(folder / "keys.npy", mmap_mode="r")
            owner = np.load(folder / "owner.npy", mmap_mode="r")
            sizes = np.load(folder / "item_spans.npy", mmap_mode="r")
        except (OSError, ValueError, KeyError):
            return False
        self._keys, self._owner, self._item_spans = keys, owner, sizes
        self._labels, self.generic_spans = meta["labels"], meta["generic_spans"]
        return True

    def _save_cache(self, folder: Path) -> None:
        """Write into a temporary sibling folder, then rename it into place (atomic: a reader
        sees the complete index or none; a concurrent task that lost the race drops its copy).

        A folder, so ``cumed.atomic.replacing`` (one file) does not fit. Renaming a folder onto
        a non-empty one fails, which is how the loser of a race finds out: the index another
        task may already be reading is never swapped out."""
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
            np.save(tmp / "keys.npy", np.ascontiguousarray(self._keys))
            np.save(tmp / "owner.npy", np.ascontiguousarray(self._owner))
            np.save(tmp / "item_spans.npy", np.ascontiguousarray(self._item_spans))
            (tmp / "meta.json").write_text(json.dumps({"labels": self._labels, "generic_spans": self.generic_spans},
                                                      ensure_ascii=False), encoding="utf-8")
            try:
                os.rename(tmp, folder)
            except OSError:  # another task got there first
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass  # a read-only or full cache folder only costs the rebuild

    def load_or_build_index(self) -> None:
        key = self.cache_key() if self.cache else None
        folder = cache_root() / "decontaminate" / key if key else None
        if folder is not None and folder.is_dir() and self._load_cached(folder):
            self.index_source = "cache"
            self.stat_update("index_from_cache")
            return
        self.build_index()
        self.index_source = "built"
        self.stat_update("index_built")
        if folder is not None:
            self._save_cache(folder)

    def carry_index(self) -> None:
        """Load the index now, in memory (not memory-mapped from the cache, which neither pickles
        nor exists on another node), so that the pickled step carries it to its tasks: for a build
        whose tasks cannot read the evaluation files (``--raw`` on object storage)."""
        self.load_or_build_index()
        self._keys, self._owner, self._item_spans = (np.array(a) for a in (self._keys, self._owner, self._item_spans))

    def build_index(self) -> None:
        labels, hs, owners, sizes = [], [], [], []
        for name, item_id, text in self._items():
            h = self._spans(text)
            if not len(h):
                continue
            h = np.unique(h)
            hs.append(h)
            owners.append(np.full(len(h), len(labels), dtype=np.int32))
            labels.append(f"{name}:{item_id}")
            sizes.append(len(h))
        h = np.concatenate(hs) if hs else np.empty(0, np.uint64)
        o = np.concatenate(owners) if owners else np.empty(0, np.int32)
        order = np.argsort(h, kind="stable")
        h, o = h[order], o[order]
        keys, start, counts = np.unique(h, return_index=True, return_counts=True)
        keep = counts <= self.max_items_per_span if self.max_items_per_span is not None else np.ones(len(keys), bool)
        self.generic_spans = int((~keep).sum())
        self._keys, self._owner, self._labels = keys[keep], o[start[keep]], labels
        self._item_spans = np.asarray(sizes, dtype=np.int64)

    def _spans(self, text: str) -> np.ndarray:
        return window_hashes(codepoints(canonical(text)), self.n)

    # --------------------------------------------------------------- filter
    def contaminating_item(self, text: str) -> str | None:
        return self.contaminating_items([text])[0]

    def contaminating_items(self, texts: list[str]) -> list[str | None]:
        """One numpy pass over a batch: canonical forms, span hashes, sorted-array lookup."""
        if self._keys is None:
            self.load_or_build_index()
        from curation.steps.span_lookup import key_spans, key_table  # numba: loaded when used

        if self._table is None:
            self._table = key_table(self._keys)
        out: list[str | None] = [None] * len(texts)
        cps, lens = canonical_batch(texts)
        # the spans that are keys, each with its document (compiled: ``span_lookup``, module doc)
        d, p = key_spans(cps, lens, self.n, self._table)
        if not len(d):
            return out
        # distinct (doc, span), then count per (doc, item): pairs as one int64 each (sorted as the
        # pairs are), not ``np.unique(axis=0)``, which sorts rows as opaque bytes (~4x slower)
        nk, ni = len(self._keys), len(self._labels)
        dp = np.unique(d * nk + p)
        pk, counts = np.unique((dp // nk) * ni + self._owner[dp % nk].astype(np.int64), return_counts=True)
        docs, items = pk // ni, pk % ni
        ok = np.zeros(len(pk), dtype=bool)
        if self.min_spans is None and self.min_coverage is None:
            ok[:] = True
        if self.min_spans is not None:
            ok |= counts >= self.min_spans
        if self.min_coverage is not None:
            ok |= counts >= self.min_coverage * self._item_spans[items]
        best: dict[int, tuple[int, int]] = {}
        sel = np.flatnonzero(ok)
        for di, item, c in zip(docs[sel].tolist(), items[sel].tolist(), counts[sel].tolist()):
            if di not in best or c > best[di][1]:  # the item sharing the most spans (the first on a tie)
                best[di] = (item, c)
        for di, (item, _) in best.items():
            out[di] = self._labels[item]
        return out

    def __getstate__(self):  # the key table is rebuilt where it is used (32 MB: not worth pickling)
        state = self.__dict__.copy()
        state["_table"] = None
        return state

    def filter_texts(self, texts: list[str]) -> list:
        return [True if item is None else (False, f"eval_overlap: {item}", {"eval_item": item})
                for item in self.contaminating_items(texts)]
