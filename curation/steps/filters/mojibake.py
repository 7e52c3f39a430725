"""Mojibake: text decoded with the wrong codec. Detected and removed, never "repaired".

Three signatures, each confirmed by re-encoding rather than by a list of odd-looking characters
(a rare character in a drug name must not remove a document):

1. Replacement characters U+FFFD (and the GBK rendering of two of them, 锟斤拷): bytes were
   already lost; share of visible characters above ``max_replacement_ratio``.
2. UTF-8 read as GBK/GB18030 (涓枃, 鈥, 銆...): encoding the text back to GB18030 yields valid
   UTF-8 for most of its CJK characters. For genuine Chinese the GB18030 bytes rarely form UTF-8
   (lead bytes E4-E9 must be followed by two 80-BF bytes): under 5 % of characters on our
   corpus; mojibake is near 100 %.
3. UTF-8 or GB18030 read as Latin-1/cp1252 (Ã¥, Ã©, â€): runs of U+0080-U+00FF characters that
   decode to CJK when encoded back to Latin-1/cp1252. Lone °, ±, ×, µ in lab values never form
   such runs.
Private-use characters (U+E000-U+F8FF, font-specific glyphs from PDF/OCR) count with 1.
"""

from __future__ import annotations

import re

from datatrove.data import Document

from curation.steps.base import CumedFilter
from curation.steps.filters._text import CJK_RUNS, fmt, run_chars, visible_chars

_BAD_RUNS = re.compile("[\ufffd\ue000-\uf8ff]+")
_KUN = "锟斤拷"
_LATIN_RUNS = re.compile("[\u0080-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]{2,}")


def _utf8_as_gbk_share(text: str, n_cjk: int) -> float:
    """Share of the CJK characters that are UTF-8 bytes rendered through GB18030."""
    if n_cjk == 0:
        return 0.0
    redecoded = text.encode("gb18030", errors="ignore").decode("utf-8", errors="replace")
    # each recovered CJK character used 3 bytes = 1.5 GBK characters
    return min(1.0, 1.5 * run_chars(CJK_RUNS, redecoded) / n_cjk) if redecoded != text else 0.0


def _latin1_mojibake_chars(text: str) -> int:
    bad = 0
    for run in _LATIN_RUNS.findall(text):
        for codec in ("cp1252", "latin-1"):
            try:
                raw = run.encode(codec)
            except UnicodeEncodeError:
                continue
            for target in ("utf-8", "gb18030"):
                try:
                    if CJK_RUNS.search(raw.decode(target)):
                        bad += len(run)
                        break
                except UnicodeDecodeError:
                    continue
            else:
                continue
            break
    return bad


class MojibakeFilter(CumedFilter):
    """Remove documents that were decoded with the wrong codec.

    Args:
        max_replacement_ratio: U+FFFD + private-use characters / visible characters (default 0.01:
            one lost character per hundred; clean sources have none, measured).
        max_gbk_utf8_share: share of CJK characters explained as UTF-8-read-as-GBK (default 0.5;
            clean text sits below 0.05, mojibake near 1.0).
        max_latin1_ratio: Latin-1 mojibake characters / visible characters (default 0.02).
        min_cjk_for_gbk_test: the GBK test needs this many CJK characters to be meaningful (8).
    """

    name = "mojibake"

    def __init__(
        self,
        max_replacement_ratio: float | None = 0.01,
        max_gbk_utf8_share: float | None = 0.5,
        max_latin1_ratio: float | None = 0.02,
        min_cjk_for_gbk_test: int = 8,
        exclusion_writer=None,
    ):
        super().__init__(exclusion_writer)
        self.max_replacement_ratio = max_replacement_ratio
        self.max_gbk_utf8_share = max_gbk_utf8_share
        self.max_latin1_ratio = max_latin1_ratio
        self.min_cjk_for_gbk_test = min_cjk_for_gbk_test

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        vis = visible_chars(text)
        if not vis:
            return True
        if self.max_replacement_ratio is not None:
            bad = run_chars(_BAD_RUNS, text) + 3 * text.count(_KUN)
            if bad / vis > self.max_replacement_ratio:
                return False, f"mojibake: replacement/private-use chars {fmt(bad / vis)} > {self.max_replacement_ratio}"
        if self.max_gbk_utf8_share is not None:
            n_cjk = run_chars(CJK_RUNS, text)
            if n_cjk >= self.min_cjk_for_gbk_test:
                share = _utf8_as_gbk_share(text, n_cjk)
                if share > self.max_gbk_utf8_share:
                    return False, f"mojibake: utf-8 read as gbk {fmt(share)} > {self.max_gbk_utf8_share}"
        if self.max_latin1_ratio is not None and not text.isascii():
            bad = _latin1_mojibake_chars(text)
            if bad / vis > self.max_latin1_ratio:
                return False, f"mojibake: latin-1 {fmt(bad / vis)} > {self.max_latin1_ratio}"
        return True
