"""Character classes shared by the Chinese filters, and per-document counts computed once.

The classes are precompiled regexes (``run_chars`` counts characters in their runs). The filters
read their counts from ``Features`` instead: one compiled pass over the code points (a lookup
table derived from these same regexes) gives every count at once, so a chain of filters no longer
re-scans each document 5 times for whitespace and 3 times for CJK. In a pipeline the first filter
computes them for a whole chunk of documents in that one pass, as columns (``chunk_features``,
``ChunkFeatures``), and the next filters find them there; a filter tests the columns in numpy
and makes a ``Features`` only for the texts it must judge one by one (``FeatureFilter``).
"Visible" characters are everything except whitespace: ratios are taken over them so that
layout (blank lines, indentation) does not move a ratio.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from operator import is_

import numpy as np

from curation.steps.base import TextFilter

# CJK Unified Ideographs + Extension A + Compatibility Ideographs (+ Ext. B-F in the SIP plane).
CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
CJK_RUNS = re.compile(f"[{CJK_CLASS}]+")
WHITESPACE_RUNS = re.compile(r"\s+")
DIGIT_RUNS = re.compile(r"[0-9\uff10-\uff19]+")

# Symbols that carry no text: decoration and markup (# * = ~ | ` @ and their full-width forms),
# ellipsis (Gopher counts "#" and "..."/"…"), box drawing, blocks, geometric shapes, misc symbols,
# dingbats (U+2500-U+27BF), emoji and pictographs. Not symbols here: < > (P<0.05), arrows (↑↓ mark
# lab values), math operators (≥ ±), and LaTeX's $ \ { } ^ _ (formulas in papers are content).
SYMBOL_CLASS = (
    r"#*=~|`@"
    "\uff03\uff0a\uff1d\uff5e\uff5c\uff40\uff20"
    "\u2026\u2500-\u27bf\u2b00-\u2bff\U0001f000-\U0001faff"
)
SYMBOL_RUNS = re.compile(f"[{SYMBOL_CLASS}]+")
ELLIPSIS = "\u2026"
_ELLIPSIS_RUNS = re.compile(f"{ELLIPSIS}+")


def run_chars(pattern: re.Pattern, text: str) -> int:
    """Number of characters of ``text`` inside runs matched by ``pattern``."""
    return sum(map(len, pattern.findall(text)))


def visible_chars(text: str) -> int:
    """Characters that are not whitespace."""
    return len(text) - run_chars(WHITESPACE_RUNS, text)


def cjk_chars(text: str) -> int:
    return run_chars(CJK_RUNS, text)


def fmt(x: float) -> str:
    return f"{x:.3f}"


# ---------------------------------------------------------------- shared per-document features
# Every filter used to re-run its own regex count (visible characters 5x, CJK 3x per document).
# ``features(text)`` computes all class counts in one numpy pass over the code points and caches
# them for the text object, so a chain of filters pays once. The per-code-point class table is
# derived from the very regexes above (a regex ``sub`` over all of Unicode), so the counts are
# identical to ``run_chars`` by construction; texts that cannot be encoded (lone surrogates) fall
# back to the regexes.
WS, CJK, DIGIT, SYMBOL, BAD, LATIN, ALNUM, GBLEAD = (1 << i for i in range(8))
# mojibake classes (kept here so the table has them; mojibake.py imports them)
BAD_CLASS = "\ufffd\ue000-\uf8ff"
LATIN_CLASS = (
    "\u0080-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014"
    "\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122"
)
# bytes that can lead a UTF-8 encoded CJK ideograph (U+3400-9FFF: E3-E9, U+F900-FAFF: EF, SIP: F0)
GB_LEAD_BYTES = bytes([0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEF, 0xF0])
_TABLES = None
_BITS = np.array([[(v >> b) & 1 for b in range(8)] for v in range(256)], dtype=np.int64)


def _class_mask(pattern: str, allchars: str) -> np.ndarray:
    """Bool per code point: does the one-character regex ``pattern`` match it."""
    marked = re.sub(pattern, "\x00", allchars)
    m = np.frombuffer(marked.encode("utf-32-le"), dtype=np.uint32) == 0
    m[0] = re.fullmatch(pattern, "\x00") is not None
    return m


def _tables():
    global _TABLES
    if _TABLES is None:
        cps = np.arange(0x110000, dtype=np.uint32)
        cps[0xD800:0xE000] = 0x20  # surrogates cannot be encoded: such texts use the regex fallback
        allchars = cps.tobytes().decode("utf-32-le")
        flags = np.zeros(0x110000, dtype=np.uint8)
        for bit, pat in ((WS, r"\s"), (CJK, f"[{CJK_CLASS}]"), (DIGIT, DIGIT_RUNS.pattern[:-1]),
                         (SYMBOL, f"[{SYMBOL_CLASS}]"), (BAD, f"[{BAD_CLASS}]"), (LATIN, f"[{LATIN_CLASS}]"),
                         (ALNUM, r"[^\W_]")):
            flags[_class_mask(pat, allchars)] |= bit
        # GB18030 bytes of each BMP character that could lead a UTF-8 CJK sequence (0, 1 or 2);
        # astral characters are 4 GB18030 bytes: handled by the exact fallback
        bmp = "".join(chr(i) if not 0xD800 <= i < 0xE000 else " " for i in range(0x10000))
        gbl = np.zeros(0x110000, dtype=np.uint8)
        enc = [c.encode("gb18030", errors="ignore") for c in bmp]
        gbl[:0x10000] = [sum(b in GB_LEAD_BYTES for b in e) for e in enc]
        gbl[0x10000:] = 4  # unknown: never lets the bound skip the exact test
        flags[gbl > 0] |= GBLEAD
        _TABLES = (flags, gbl)
    return _TABLES


class Features:
    """Class counts of one text (see ``features``); ``cp`` is None when the regex fallback was used."""

    __slots__ = ("text", "cp", "flags", "visible", "cjk", "digit", "symbol", "bad", "latin", "alnum", "gblead_chars", "_gb",
                 "_prose")

    def __init__(self, text: str, cp: np.ndarray | None = None, flags: np.ndarray | None = None,
                 counts: list[int] | None = None):
        """``cp``, ``flags`` and ``counts`` (the 8 class counts) are given by ``ChunkFeatures``,
        which computed them for a whole chunk of texts; without them they are computed here."""
        self.text = text
        self._gb = None
        self._prose = None
        if counts is None:
            try:
                cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            except UnicodeEncodeError:
                cp = None
            if cp is not None:
                flags = (_TABLES or _tables())[0][cp]
                counts = (np.bincount(flags, minlength=256) @ _BITS).tolist()
        self.cp = cp
        if cp is not None:
            self.flags = flags
            ws, self.cjk, self.digit, self.symbol, self.bad, self.latin, self.alnum, self.gblead_chars = counts
        else:
            self.flags = None
            ws = run_chars(WHITESPACE_RUNS, text)
            self.cjk = run_chars(CJK_RUNS, text)
            self.digit = run_chars(DIGIT_RUNS, text)
            self.symbol = run_chars(SYMBOL_RUNS, text)
            self.bad = run_chars(re.compile(f"[{BAD_CLASS}]+"), text)
            self.latin = run_chars(re.compile(f"[{LATIN_CLASS}]+"), text)
            self.alnum = None
            self.gblead_chars = None
        self.visible = len(text) - ws
        if self.symbol and ELLIPSIS in text:
            # a Chinese ellipsis (省略号) is one mark written with two "…": count each pair once,
            # as Gopher counts one "…" per ellipsis (a lone "…" still counts 1)
            n = text.count(ELLIPSIS)
            self.symbol -= n - sum((len(r) + 1) // 2 for r in _ELLIPSIS_RUNS.findall(text))

    def prose(self, chinese: bool = False, min_share: float = 0.0) -> "Features":
        """Counts of this text's prose lines (``prose_lines``), cached here (not in the shared
        cache, which it would crowd); ``self`` when every line is prose, or when the prose holds
        less than ``min_share`` of the visible characters (a text that is mostly table or
        reference list is judged whole, as before)."""
        if self._prose is None:
            self._prose = {}
        if chinese not in self._prose:
            s = prose_lines(self, chinese)
            # None for "all prose", not self: a reference to itself would make a cycle, freed only
            # by the collector's rare full pass, and hold the chunk's arrays (``cp``, ``flags``) till
            # then: ~5 MB per 15k QA records, 2.2 GB in a worker of a 10M build (BENCHMARKS.md)
            self._prose[chinese] = None if s is self.text else Features(s)
        p = self._prose[chinese]
        return p if p is not None and p.visible >= min_share * self.visible else self

    def gb_lead_bound(self) -> int | None:
        """Upper bound on the GB18030 bytes of the text that can lead a UTF-8 CJK sequence."""
        if self._gb is None and self.cp is not None:
            self._gb = int(_tables()[1][self.cp].sum(dtype=np.int64))
        return self._gb


class ChunkFeatures:
    """The ``Features`` of a chunk's texts as columns, computed in one compiled pass
    (``_class_counts``) over the chunk's code points laid end to end.

    ``counts[i]``: text i's 8 class counts (``WS`` ... ``GBLEAD`` bits, in that order; -1 where the
    regex fallback has none), ``visible[i]`` and ``symbol[i]`` as ``Features`` has them; ``cp`` and
    ``flags``: the code points and their classes, text i at ``[starts[i], ends[i])``, or
    ``starts[i] == -1`` when its code points cannot be read (a lone surrogate: regex counts).

    Why columns: a ``Features`` object per text cost more than the counting (~3 us a QA record, ~3 s
    a million records), and most filters need none. A filter tests a whole chunk at once in numpy
    (``FeatureFilter.suspects``) and builds ``Features`` (``feature(i)``) only for the few texts it
    must judge one by one. What the filters before it left of a chunk is ``take(rows)``: the same
    arrays, fewer rows."""

    __slots__ = ("texts", "counts", "visible", "symbol", "cp", "flags", "starts", "ends", "_fts", "_ids")

    def __init__(self, texts: list[str]):
        from curation.steps.filters._class_counts import class_counts  # numba: loaded when used

        n = len(texts)
        self.texts = texts
        self._fts: list[Features | None] = [None] * n
        self._ids = None
        lens = np.fromiter(map(len, texts), dtype=np.int64, count=n)
        self.ends = np.cumsum(lens)
        self.starts = self.ends - lens
        try:
            self.cp = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
            bad = []
        except UnicodeEncodeError:  # a lone surrogate: those texts alone take the regex fallback
            bad = [i for i, t in enumerate(texts) if not _encodable(t)]
            good = np.ones(n, dtype=bool)
            good[bad] = False
            lens = np.where(good, lens, 0)
            self.ends = np.cumsum(lens)
            self.starts = np.where(good, self.ends - lens, -1)
            self.cp = np.frombuffer("".join(t for t, g in zip(texts, good.tolist()) if g).encode("utf-32-le"),
                                    dtype=np.uint32)
        self.flags, self.counts = class_counts(self.cp, lens, (_TABLES or _tables())[0])
        for i in bad:
            f = self._fts[i] = Features(texts[i])
            self.counts[i] = [-1 if v is None else v for v in
                              (len(f.text) - f.visible, f.cjk, f.digit, f.symbol, f.bad, f.latin, f.alnum, f.gblead_chars)]
        self.visible = lens - self.counts[:, 0] if not bad else np.fromiter(
            (len(t) for t in texts), dtype=np.int64, count=n) - self.counts[:, 0]
        self.symbol = self.counts[:, 3].copy()
        for i in np.flatnonzero(self.symbol > 0).tolist():  # the Chinese ellipsis, as ``Features`` counts it
            if self._fts[i] is not None or ELLIPSIS in texts[i]:
                self.symbol[i] = self.feature(i).symbol

    def __len__(self) -> int:
        return len(self.texts)

    def count(self, bit: int) -> np.ndarray:
        """One class count per text (``CJK``, ``ALNUM``...): a column of ``counts``."""
        return self.counts[:, bit.bit_length() - 1]

    # the columns under ``Features``' names (``MaxShareFilter.feature``)
    cjk = property(lambda self: self.count(CJK))
    digit = property(lambda self: self.count(DIGIT))
    bad = property(lambda self: self.count(BAD))
    latin = property(lambda self: self.count(LATIN))
    alnum = property(lambda self: self.count(ALNUM))
    gblead_chars = property(lambda self: self.count(GBLEAD))

    def holding(self, char: str) -> np.ndarray:
        """Per text, whether it holds ``char``: one comparison over the chunk's code points."""
        out = np.zeros(len(self), dtype=bool)
        hits = np.flatnonzero(self.cp == ord(char))
        if len(hits):
            # the text whose span holds each hit (ends ascend: rows keep the chunk's order); a hit
            # in the span of a row taken out falls before the next row's start
            rows = np.searchsorted(self.ends, hits, side="right")
            ok = rows < len(self)
            rows, hits = rows[ok], hits[ok]
            out[rows[(self.starts[rows] >= 0) & (self.starts[rows] <= hits)]] = True
        for i in np.flatnonzero(self.starts < 0).tolist():
            out[i] = char in self.texts[i]
        return out

    @property
    def readable(self) -> np.ndarray:
        """Texts whose code points are in ``cp`` (all but those with a lone surrogate)."""
        return self.starts >= 0

    def feature(self, i: int) -> Features:
        """Text i's ``Features`` (views into the chunk's arrays), made once."""
        f = self._fts[i]
        if f is None:
            s, e = int(self.starts[i]), int(self.ends[i])
            f = self._fts[i] = Features(self.texts[i], self.cp[s:e], self.flags[s:e], self.counts[i].tolist())
        return f

    def take(self, rows: np.ndarray, texts: list[str]) -> ChunkFeatures:
        """The features of ``texts``, rows ``rows`` of this chunk (the same arrays)."""
        out = ChunkFeatures.__new__(ChunkFeatures)
        out.texts, out._ids = texts, None
        out.counts, out.visible, out.symbol = self.counts[rows], self.visible[rows], self.symbol[rows]
        out.cp, out.flags, out.starts, out.ends = self.cp, self.flags, self.starts[rows], self.ends[rows]
        out._fts = list(map(self._fts.__getitem__, rows.tolist()))
        return out

    def ids(self) -> np.ndarray:
        if self._ids is None:
            self._ids = np.fromiter(map(id, self.texts), dtype=np.uint64, count=len(self.texts))
        return self._ids


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-32-le")
    except UnicodeEncodeError:
        return False
    return True


# The last chunk's features: the chain's filters ask for the same chunk one after another, less
# what each removed. A step that is not a filter of the chain (a model filter, a user's step)
# sees other texts, which are counted again (a few ns a character; no per-text cache to keep).
_last: ChunkFeatures | None = None


def clear_cache() -> None:
    global _last
    _last = None


def chunk_features(texts: list[str]) -> ChunkFeatures:
    """The features of a chunk's texts: the last chunk's when ``texts`` are its texts or some of them
    in the same order (identity checked: the very list, else every text's ``id`` in numpy, which
    is unique among the last chunk's texts while it holds them), else computed."""
    global _last
    last = _last
    if last is not None and len(texts) <= len(last):
        if len(texts) == len(last) and all(map(is_, last.texts, texts)):  # (not ``is``: a list may change)
            return last
        ids = np.fromiter(map(id, texts), dtype=np.uint64, count=len(texts))
        rows = np.flatnonzero(np.isin(last.ids(), ids))  # a text may be in a chunk twice
        if len(rows) == len(texts) and (last.ids()[rows] == ids).all():
            _last = last.take(rows, texts)
            return _last
    _last = ChunkFeatures(texts)
    return _last


def features(text: str) -> Features:
    """Counts of ``text``: from the last chunk's features when it is one of its texts (a filter
    judging a text alone after its chunk), else computed for it."""
    last = _last
    if last is not None:
        hit = np.flatnonzero(last.ids() == id(text))
        if len(hit) and last.texts[hit[0]] is text:
            return last.feature(int(hit[0]))
    return Features(text)


def features_batch(texts: list[str]) -> list[Features]:
    """``features`` of every text (``chunk_features``, each made a ``Features``)."""
    cf = chunk_features(texts)
    return [cf.feature(i) for i in range(len(cf))]


# ---------------------------------------------------------------- prose lines
# A paper is not garbage because it has tables, an English abstract or a reference list, but the
# repetition and script-share filters were calibrated on prose: a results table repeats "±" and
# "(P<0.05)" rows, an English abstract repeats its own 10-character (2-word) n-grams and drags the
# CJK share down. ``prose_lines`` is the view those filters judge instead (``prose=True``).
_REF_TITLE = re.compile(
    r"^\s*(?:#+\s*)?(?:[\d.．、]+\s*)?[【\[]?\s*(?:主要)?参\s*考\s*文\s*献\s*[】\]]?\s*"
    r"(?:[(（]?\s*references?\s*[)）]?)?\s*[:：]?\s*$"
    r"|^\s*(?:#+\s*)?(?:[\d.．、]+\s*)?(?:references?|bibliography)\s*[:：]?\s*$",
    re.IGNORECASE,
)
_REF_ENTRY = re.compile(r"^\s*[\[［]\d{1,3}[\]］]")
REF_TITLE_FROM = 0.2  # a references title in the first 20 % is a table of contents, not the list
MIN_LETTER_SHARE = 0.5  # a prose line is at least half letters (CJK or alphabetic)


def prose_lines(text: "str | Features", chinese: bool = False) -> str:
    """The prose of ``text``: its lines minus those that are not sentences. Set aside:

    - table rows: a line starting with ``|`` (Markdown pipe table) or holding a tab (the markdown
      reader's cell separator);
    - lines of numbers and symbols: fewer than half of the visible characters are letters (CJK or
      alphabetic): table rows once normalisation made their tabs spaces (``3.89±1.31 3.85±1.23``),
      formulas, lab-value lists, dot leaders;
    - the reference list: from a line that is only a references title (``参考文献``, ``References``,
      ``Bibliography``, numbered or bracketed) past the first 20 % of the text to the end, and
      citation entries (a line starting ``[12]``);
    - with ``chinese=True`` also lines that are not mostly Chinese (CJK < half of the letters):
      English abstracts, bilingual captions, author and affiliation lines in Latin script.

    Blank lines count as prose. Returns ``text`` itself (the same object) when every line is prose,
    so a filter's cached counts are reused; a text whose characters cannot be classified in one
    pass (lone surrogates) is returned whole.
    """
    ft = text if isinstance(text, Features) else features(text)
    text = ft.text
    if ft.flags is None or not text:
        return text
    cp = ft.cp
    nl = np.flatnonzero(cp == 10)
    starts = np.concatenate(([0], nl + 1))
    ends = np.concatenate((nl, [len(cp)]))
    f = ft.flags

    def per_line(mask):
        cs = np.zeros(len(cp) + 1, dtype=np.int64)
        np.cumsum(mask, out=cs[1:])
        return cs[ends] - cs[starts]

    vis = per_line((f & WS) == 0)
    let = per_line(((f & ALNUM) != 0) & ((f & DIGIT) == 0))
    keep = (vis == 0) | (let >= MIN_LETTER_SHARE * vis)
    if chinese:
        keep &= (vis == 0) | (2 * per_line((f & CJK) != 0) >= let)
    lines = text.split("\n")
    ref_from = REF_TITLE_FROM * len(text)
    special = "|" in text or "\t" in text or "[" in text or "［" in text
    refs = "参" in text or "eferenc" in text or "EFERENC" in text or "ibliograph" in text
    if keep.all() and not special and not refs:
        return text
    out = []
    for i, line in enumerate(lines):
        if refs and starts[i] >= ref_from and _REF_TITLE.match(line):
            break
        if not keep[i]:
            continue
        if special and (line.lstrip().startswith("|") or "\t" in line or _REF_ENTRY.match(line)):
            continue
        out.append(line)
    return text if len(out) == len(lines) else "\n".join(out)


class FeatureFilter(TextFilter):
    """A filter that judges a text by its ``Features``: a subclass writes ``judge(ft)`` (``ft.text``
    is the text), the definition. The chain's filters share one ``ChunkFeatures`` per chunk
    (``chunk_features``); a subclass may also write ``suspects(cf)``, the texts ``judge`` might
    not keep, found for the whole chunk in numpy, so that only those become ``Features`` and are
    judged (on QA records, nearly none: the per-text calls were most of these filters' time)."""

    @abstractmethod
    def judge(self, ft: Features) -> bool | tuple[bool, str]:
        raise NotImplementedError

    def suspects(self, cf: ChunkFeatures) -> np.ndarray | None:
        """A bool per text of the chunk: True where ``judge`` might remove it (a superset: each
        is judged); None: judge every text."""
        return None

    def verdict(self, text: str) -> bool | tuple[bool, str]:
        return self.judge(features(text))

    def filter_texts(self, texts: list[str]) -> list[bool | tuple[bool, str]]:
        cf = chunk_features(texts)
        suspect = self.suspects(cf)
        judge, feature = self.judge, cf.feature
        if suspect is None:
            return [judge(feature(i)) for i in range(len(cf))]
        out: list = [True] * len(cf)
        for i in np.flatnonzero(suspect).tolist():
            out[i] = judge(feature(i))
        return out


def share(part: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """``part / visible`` per text, 0.0 where nothing is visible (as the filters' ``judge``)."""
    return np.divide(part, visible, out=np.zeros(len(part)), where=visible > 0)


class MaxShareFilter(FeatureFilter):
    """Base of the "too many X among visible characters" filters: a subclass names the
    ``Features`` count it limits (``feature``) and its default ``max_ratio``; ``None`` disables."""

    feature = ""

    def __init__(self, max_ratio: float | None, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.max_ratio = max_ratio

    def suspects(self, cf: ChunkFeatures) -> np.ndarray:
        if self.max_ratio is None:
            return np.zeros(len(cf), dtype=bool)
        return share(getattr(cf, self.feature), cf.visible) > self.max_ratio

    def judge(self, ft: Features) -> bool | tuple[bool, str]:
        if self.max_ratio is None:
            return True
        vis = ft.visible
        ratio = getattr(ft, self.feature) / vis if vis else 0.0
        if ratio > self.max_ratio:
            return False, f"{self.name}: {fmt(ratio)} > {self.max_ratio}"
        return True
