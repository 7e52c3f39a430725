"""Character classes shared by the Chinese filters, and per-document counts computed once.

The classes are precompiled regexes (``run_chars`` counts characters in their runs). The filters
read their counts from ``features(text)`` instead: one numpy pass over the code points (a lookup
table derived from these same regexes, then one ``bincount``) gives every count at once, and is
cached for the text object, so a chain of filters no longer re-scans each document 5 times for
whitespace and 3 times for CJK. "Visible" characters are everything except whitespace: ratios are
taken over them so that layout (blank lines, indentation) does not move a ratio.
"""

from __future__ import annotations

import re

import numpy as np
from datatrove.data import Document

from curation.steps.base import CHUNK, CumedFilter

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

    __slots__ = ("text", "cp", "flags", "visible", "cjk", "digit", "symbol", "bad", "latin", "alnum", "gblead_chars", "_gb")

    def __init__(self, text: str):
        self.text = text
        self._gb = None
        try:
            cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        except UnicodeEncodeError:
            cp = None
        self.cp = cp
        if cp is not None:
            f = (_TABLES or _tables())[0][cp]
            self.flags = f
            ws, self.cjk, self.digit, self.symbol, self.bad, self.latin, self.alnum, self.gblead_chars = (
                np.bincount(f, minlength=256) @ _BITS
            ).tolist()
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

    def gb_lead_bound(self) -> int | None:
        """Upper bound on the GB18030 bytes of the text that can lead a UTF-8 CJK sequence."""
        if self._gb is None and self.cp is not None:
            self._gb = int(_tables()[1][self.cp].sum(dtype=np.int64))
        return self._gb


_CACHE: dict[int, Features] = {}
_CACHE_SIZE = 2 * CHUNK  # steps pass documents on a chunk at a time: the next filter must still find them


def features(text: str) -> Features:
    """Counts of ``text`` (cached by object identity: a chain of filters computes them once)."""
    f = _CACHE.get(id(text))
    if f is not None and f.text is text:
        return f
    f = Features(text)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[id(text)] = f
    return f


class MaxShareFilter(CumedFilter):
    """Base of the "too many X among visible characters" filters: a subclass names the
    ``Features`` count it limits (``feature``) and its default ``max_ratio``; ``None`` disables."""

    feature = ""

    def __init__(self, max_ratio: float | None, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.max_ratio = max_ratio

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if self.max_ratio is None:
            return True
        ft = features(doc.text)
        vis = ft.visible
        ratio = getattr(ft, self.feature) / vis if vis else 0.0
        if ratio > self.max_ratio:
            return False, f"{self.name}: {fmt(ratio)} > {self.max_ratio}"
        return True
