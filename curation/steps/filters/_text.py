"""Character classes shared by the Chinese filters, and per-document counts computed once.

The classes are precompiled regexes (``run_chars`` counts characters in their runs). The filters
read their counts from ``features(text)`` instead: one numpy pass over the code points (a lookup
table derived from these same regexes, then one ``bincount``) gives every count at once, and is
cached for the text object, so a chain of filters no longer re-scans each document 5 times for
whitespace and 3 times for CJK. In a pipeline the first filter computes them for a whole chunk of
documents in that one pass (``features_batch``, ``FeatureFilter``). "Visible" characters are
everything except whitespace: ratios are taken over them so that layout (blank lines, indentation)
does not move a ratio.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections import deque
from operator import is_

import numpy as np

from curation.steps.base import CHUNK, TextFilter

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
        """``cp``, ``flags`` and ``counts`` (the 8 class counts) are given by ``features_batch``,
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


# Features cached by text object, in generations: one dict per ``features_batch`` computation
# (a chunk's texts), the oldest generations dropped first. Steps pass documents on a chunk at a
# time; in a stream of single documents each filter re-chunks them, so the first filter runs up
# to ~9 chunks ahead of the last one, which must still find them: room for 4,096 texts (with 2
# chunks of 256, a build of 250k QA records counted 546k texts, 2.2 times each; with 16, 250k).
# The characters bound keeps a corpus of long papers (~30k characters, ~5 bytes each held) to
# ~40 MB of cached arrays. Whole generations, not entries: an ordered dict updated and trimmed
# per text cost ~1.3 s a million records.
_CACHE_SIZE = 16 * CHUNK
_CACHE_CHARS = 8_000_000
_generations: deque[tuple[dict[int, Features], int]] = deque()  # (id(text) -> Features, characters)


def clear_cache() -> None:
    global _last
    _generations.clear()
    _last = None


def _cached(text: str) -> Features | None:
    key = id(text)
    for gen, _ in reversed(_generations):
        f = gen.get(key)
        if f is not None:
            return f if f.text is text else None  # a dead text's id reused by a new one
    return None


def features(text: str) -> Features:
    """Counts of ``text`` (cached by object identity: a chain of filters computes them once)."""
    f = _cached(text)
    if f is not None:
        return f
    f = Features(text)
    _remember_all([f], len(text))
    return f


def _remember_all(fs: list[Features], chars: int) -> None:
    """Cache ``fs`` (``chars``: their texts' length) as one generation, oldest generations out first
    (the newest always stays)."""
    _generations.append(({id(f.text): f for f in fs}, chars))
    held = sum(len(g) for g, _ in _generations)
    held_chars = sum(c for _, c in _generations)
    while len(_generations) > 1 and (held > _CACHE_SIZE or held_chars > _CACHE_CHARS):
        gen, c = _generations.popleft()
        held -= len(gen)
        held_chars -= c


_last: tuple[list[str], list[Features]] | None = None  # features_batch's last (texts, answer)


def _from_last(texts: list[str]) -> list[Features] | None:
    """The last answer when ``texts`` are the last texts, or some of them in the same order (a chain
    of filters asks for a chunk, then for what the filters before it left of the chunk); else None.
    Identity is checked text by text, in one walk."""
    if _last is None or len(texts) > len(_last[0]):
        return None
    prev, fts = _last
    if len(texts) == len(prev):
        return fts if all(map(is_, prev, texts)) else None
    out, j, n = [], 0, len(prev)
    for t in texts:
        while j < n and prev[j] is not t:
            j += 1
        if j == n:
            return None
        out.append(fts[j])
        j += 1
    return out


# Texts up to this many characters are counted a chunk at a time; a longer one alone (its numpy
# calls are long enough that their ~1 us overhead does not matter, and the cached views of a chunk
# keep the whole chunk's arrays alive: 256 x 4,000 characters x 5 bytes = 5 MB at most).
BATCH_MAX_CHARS = 4000


def features_batch(texts: list[str]) -> list[Features]:
    """``features`` of every text; those not cached yet computed together, in one compiled pass over
    the concatenated code points (``_class_counts``). On ~150-character QA records the ~10 numpy
    calls per text cost more than the counting: ``min_length``, the first filter, took 2.4 s of
    CPU per 250k records, 1.2 s with numpy per chunk. Each text's ``cp``/``flags`` are views into
    the chunk's arrays."""
    global _last
    # the chain's filters ask for the same chunk one after another (less what a filter removed):
    # the previous answer, checked text by text for identity, spares a dict lookup per text and filter
    last = _from_last(texts)
    if last is not None:
        _last = (texts, last)
        return last
    out = list(map(_cached, texts))
    todo = [i for i, f in enumerate(out) if f is None]
    batch = [i for i in todo if len(texts[i]) <= BATCH_MAX_CHARS]
    if len(batch) > 1:
        try:
            cp = np.frombuffer("".join(texts[i] for i in batch).encode("utf-32-le"), dtype=np.uint32)
        except UnicodeEncodeError:
            cp = None  # a lone surrogate in one of them: each alone below (the regex fallback)
        if cp is not None:
            from curation.steps.filters._class_counts import class_counts  # numba: loaded when used

            lens = np.fromiter((len(texts[i]) for i in batch), dtype=np.int64, count=len(batch))
            flags, counts = class_counts(cp, lens, (_TABLES or _tables())[0])
            counts = counts.tolist()
            ends = np.cumsum(lens).tolist()
            new = [Features(texts[i], cp[start:end], flags[start:end], c)
                   for i, start, end, c in zip(batch, [0, *ends[:-1]], ends, counts)]
            _remember_all(new, ends[-1])
            for i, f in zip(batch, new):
                out[i] = f
    for i in todo:
        if out[i] is None:
            out[i] = features(texts[i])
    _last = (texts, out)
    return out


def concat(fts: list[Features]) -> tuple[np.ndarray, np.ndarray]:
    """(code points, flags) of these texts (each with ``cp``) laid end to end, for a filter that
    judges a whole chunk in a few numpy calls."""
    return np.concatenate([f.cp for f in fts]), np.concatenate([f.flags for f in fts])


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
    is the text). The first such filter of a chain computes a whole chunk's features at once
    (``features_batch``), the next ones find them cached and judge them without a lookup per
    document (1.3M ``features()`` calls per 250k records before)."""

    @abstractmethod
    def judge(self, ft: Features) -> bool | tuple[bool, str]:
        raise NotImplementedError

    def verdict(self, text: str) -> bool | tuple[bool, str]:
        return self.judge(features(text))

    def filter_texts(self, texts: list[str]) -> list[bool | tuple[bool, str]]:
        judge = self.judge
        return [judge(ft) for ft in features_batch(texts)]


class MaxShareFilter(FeatureFilter):
    """Base of the "too many X among visible characters" filters: a subclass names the
    ``Features`` count it limits (``feature``) and its default ``max_ratio``; ``None`` disables."""

    feature = ""

    def __init__(self, max_ratio: float | None, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.max_ratio = max_ratio

    def judge(self, ft: Features) -> bool | tuple[bool, str]:
        if self.max_ratio is None:
            return True
        vis = ft.visible
        ratio = getattr(ft, self.feature) / vis if vis else 0.0
        if ratio > self.max_ratio:
            return False, f"{self.name}: {fmt(ratio)} > {self.max_ratio}"
        return True
