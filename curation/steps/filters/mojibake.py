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
from curation.steps.filters._text import BAD_CLASS, CJK_RUNS, LATIN_CLASS, features, fmt, run_chars

_BAD_RUNS = re.compile(f"[{BAD_CLASS}]+")
_KUN = "锟斤拷"
_LATIN_RUNS = re.compile(f"[{LATIN_CLASS}]{{2,}}")


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
        ft = features(text)
        vis = ft.visible
        if not vis:
            return True
        if self.max_replacement_ratio is not None:
            bad = ft.bad + (3 * text.count(_KUN) if ft.cjk else 0)
            if bad / vis > self.max_replacement_ratio:
                return False, f"mojibake: replacement/private-use chars {fmt(bad / vis)} > {self.max_replacement_ratio}"
        if self.max_gbk_utf8_share is not None:
            n_cjk = ft.cjk
            if n_cjk >= self.min_cjk_for_gbk_test and not self._gbk_share_bounded(ft, n_cjk):
                share = _utf8_as_gbk_share(text, n_cjk)
                if share > self.max_gbk_utf8_share:
                    return False, f"mojibake: utf-8 read as gbk {fmt(share)} > {self.max_gbk_utf8_share}"
        # Latin-1 mojibake characters are a subset of the LATIN class chars (runs of 2+): when even
        # all of them stay under the ratio, the exact (slow) test cannot remove the document
        r = self.max_latin1_ratio
        if r is not None and not text.isascii() and not (r >= 0 and (ft.latin < 2 or ft.latin / vis <= r)):
            bad = _latin1_mojibake_chars(text)
            if bad / vis > self.max_latin1_ratio:
                return False, f"mojibake: latin-1 {fmt(bad / vis)} > {self.max_latin1_ratio}"
        return True

    def _gbk_share_bounded(self, ft, n_cjk: int) -> bool:
        """True when the UTF-8-as-GBK share provably stays <= the threshold.

        Every CJK character recovered by re-decoding uses one UTF-8 lead byte (E3-E9, EF, F0) of
        the GB18030 bytes, so their count bounds it (1.5 x / n is monotone in x in floating point).
        """
        if ft.gblead_chars is None:
            return False
        thr = self.max_gbk_utf8_share
        if 1.5 * (2 * ft.gblead_chars) / n_cjk <= thr:  # each character has at most 2 such bytes
            return True
        ub = ft.gb_lead_bound()
        return ub is not None and 1.5 * ub / n_cjk <= thr
