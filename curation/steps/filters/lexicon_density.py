"""Medical-domain relevance: share of CJK characters covered by medical lexicon terms."""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np

from curation.steps.filters._text import FeatureFilter, chunk_features, cjk_chars, fmt
from curation.steps.lexicon import (DEFAULT_LEXICON, LEXICON_KEY, LexiconMatcher, build_lexicon, cache_name,
                                   default_cache_dir, lexicon_files)

DEFAULT_RAW = Path(os.environ.get("CUMED_RAW", Path(__file__).resolve().parents[4] / "shared" / "data" / "raw"))

# The automaton of each term set this process has built, by a hash of the terms: the tasks a worker
# runs share it, and workers forked after the step was built (the local executor) inherit it.
_MATCHERS: dict[str, LexiconMatcher] = {}


def _matcher(key: str, terms: Callable[[], list[str]], cache_dir=None) -> LexiconMatcher:
    if key not in _MATCHERS:
        _MATCHERS[key] = LexiconMatcher(terms(), Path(cache_dir or default_cache_dir()) / cache_name(key))
    return _MATCHERS[key]


class LexiconDensityFilter(FeatureFilter):
    """Remove documents whose medical-term density is below ``min_density``.

    density = characters covered by lexicon terms (leftmost-longest, no overlaps) / CJK characters.

    Args:
        min_density: default 0.05. Measured on the real corpus (BENCHMARKS.md): the
            medical sources have median density 0.2-0.4 and a 1st percentile of ~0.05-0.1 among
            documents of 50+ CJK characters; generic chit-chat ("谢谢医生，祝您生活愉快") is 0.
        min_cjk: documents with fewer CJK characters are not judged (default 10; the CJK-ratio
            and length filters deal with them).
        lexicon: the term files, paths or globs relative to ``raw_dir`` (a recipe's
            ``steps.filters.lexicon_density.lexicon``): ``.tsv`` knowledge-graph triples or one term
            per line (``curation.steps.lexicon``). Default: the seed's CMeKG triples and 39health
            vocabularies (``DEFAULT_LEXICON``); read only when this filter runs.
        raw_dir / cache_dir: the folder ``lexicon`` is relative to (a build passes ``--raw``;
            default ``$CUMED_RAW`` or ``../shared/data/raw``) and where the term list is cached
            (``$CUMED_CACHE``).
        terms: an explicit term iterable instead (tests, other domains).
    """

    name = "lexicon_density"

    def __init__(
        self,
        min_density: float | None = 0.05,
        min_cjk: int = 10,
        raw_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        terms=None,
        exclusion_writer=None,
        lexicon=DEFAULT_LEXICON,
    ):
        super().__init__(exclusion_writer)
        self.min_density = min_density
        self.min_cjk = min_cjk
        self._key = self._terms = self._matcher = None
        self.cache_dir = cache_dir  # also of the compiled automaton (``LexiconMatcher``)
        if min_density is not None:
            terms = list(terms if terms is not None else build_lexicon(raw_dir or DEFAULT_RAW, cache_dir, lexicon))
            self._key = hashlib.sha256("\n".join(sorted(terms)).encode()).hexdigest()
            # The terms travel to the tasks as one bytes object, not the automaton: pickling that
            # (its ~128 k terms listed back out of it, then a new automaton built in every task)
            # cost ~0.3 s in the driver and ~0.2 s in the worker per task, ~4 s of a seed build's
            # CPU; and datatrove pickles steps with dill, whose pure-Python pickler takes ~0.25 s
            # for 128 k separate strings (one bytes object: ~1 ms).
            self._terms = pickle.dumps(terms, protocol=pickle.HIGHEST_PROTOCOL)
            self._matcher = _matcher(self._key, lambda: terms, cache_dir)  # now: an empty lexicon fails when the step is built

    @property
    def matcher(self) -> LexiconMatcher | None:
        if self._matcher is None and self._key is not None:
            self._matcher = _matcher(self._key, lambda: pickle.loads(self._terms), self.cache_dir)
        return self._matcher

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_matcher"] = None  # the automaton is this process's (``_MATCHERS``)
        return state

    @classmethod
    def side_files(cls, min_density: float | None = 0.05, raw_dir: str | Path | None = None, terms=None,
                   lexicon=DEFAULT_LEXICON, **_options) -> list[dict]:
        """The lexicon files a filter built with these options reads (none with ``terms=`` or
        ``min_density=None``): the build hashes them into its work folder key and lineage."""
        if min_density is None or terms is not None:
            return []
        root = Path(raw_dir or DEFAULT_RAW)
        return [{"role": "lexicon", "name": "medical_lexicon", "path": p, "root": root, "key": LEXICON_KEY}
                for p in lexicon_files(root, lexicon)]

    def density(self, text: str) -> float:
        n = cjk_chars(text)
        return self.matcher.matched_chars(text) / n if n else 0.0

    def filter_texts(self, texts: list[str]) -> list[bool | tuple[bool, str]]:
        # The texts ``judge`` would walk, walked by the compiled automaton in one call (the same
        # matches and the same early exit; 250k QA records: 1.56 -> 0.71 s of CPU); a text whose
        # code points could not be read (a lone surrogate) goes through ``judge``.
        if self.matcher is None:
            return [True] * len(texts)
        cf = chunk_features(texts)
        cjk = cf.cjk
        sel = np.flatnonzero(cf.readable & (cjk >= self.min_cjk))
        out: list = [True] * len(texts)
        if len(sel):
            need = self.min_density * cjk[sel]
            covered = self.matcher.compiled.covered(cf.cp, cf.starts[sel], cf.ends[sel], need)
            for k in np.flatnonzero(covered < need).tolist():
                i = int(sel[k])
                out[i] = (False, f"lexicon_density: {fmt(float(covered[k]) / int(cjk[i]))} < {self.min_density}")
        for i in np.flatnonzero(~cf.readable).tolist():
            out[i] = self.judge(cf.feature(i))
        return out

    def judge(self, ft) -> bool | tuple[bool, str]:
        if self.matcher is None:
            return True
        n = ft.cjk
        if n < self.min_cjk:
            return True
        # early exit: stop matching as soon as enough terms were seen (Aho-Corasick over a
        # 128k-term automaton runs at ~2.5 MB/s; typical density is 6x the threshold)
        need = self.min_density * n
        covered = 0
        for _, length in self.matcher.automaton.iter_long(ft.text):
            covered += length
            if covered >= need:
                return True
        return False, f"lexicon_density: {fmt(covered / n)} < {self.min_density}"
