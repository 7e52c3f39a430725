"""Mojibake: text decoded with the wrong codec. Detected and removed, never "repaired".

Three signatures, each confirmed by re-encoding rather than by a list of odd-looking characters
(a rare character in a drug name must not remove a document):

1. Replacement characters U+FFFD (and the GBK rendering of two of them, 锟斤拷): bytes were
   already lost; share of visible characters above ``max_replacement_ratio``.
2. UTF-8 read as GBK/GB18030 (涓枃, 鈥, 銆...): encoding the text back to GB18030 yields valid
   UTF-8 for most of its CJK characters. For genuine Chinese the GB18030 bytes rarely form UTF-8
   (lead bytes E4-E9 must be followed by two 80-BF bytes): under 5 % of characters on our
   corpus; mojibake is near 100 %.
3. UTF-8 or GB18030 read as Latin-1/cp1252 (Ã¥, Ã©, â€): runs of U+0080-U+00FF/cp1252
   characters that decode to CJK when encoded back to Latin-1/cp1252. Lone °, ±, ×, µ in lab
   values never form such runs. Two readings, judged differently:

   - as UTF-8: a CJK character is 3 bytes, a lead E3-E9 (ã-é) and two continuation bytes
     80-BF; genuine text practically never has that pattern, so a run whose bytes decode to
     CJK as UTF-8 (strictly, or with most of its bytes when some were lost to
     ``errors="ignore"``/``"replace"``) is mojibake.
   - as GB18030: almost any *pair* of such characters is a valid GBK code, among them the two
     commonest Chinese punctuation marks: ``——`` (破折号) is cp1252 97 97 = 棗 and ``……``
     (省略号) 85 85 = 厖, so ``好发于4——20岁`` once looked like mojibake (1,777 of 14,336
     39health cards rendered as plain lines were removed). GB18030 read as Latin-1 is Chinese
     text written with common characters, GB2312's rows A1-F7 x A1-FE: it comes out as Latin-1
     *letters and symbols* (ÖÐÎÄ, ²¡ÈË), never cp1252 punctuation (bytes 80-A0: — … “ ” •).
     So a run counts here only when every byte is in A1-FE, it is not one character repeated,
     it has a Latin-1 letter (À-ÿ but × ÷) or at least two characters' worth (4 bytes), and
     at least half of its bytes read as CJK: ``——``, ``……``, ``××``, ``m²·`` stay genuine.
Private-use characters (U+E000-U+F8FF, font-specific glyphs from PDF/OCR) count with 1.
"""

from __future__ import annotations

import re

import numpy as np

from curation.steps.filters._text import (BAD_CLASS, CJK_RUNS, LATIN_CLASS, ChunkFeatures, FeatureFilter, Features, fmt,
                                      run_chars, share)

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


# Latin-1 letters (GBK lead/trail bytes C0-FF read as Latin-1), × and ÷ excluded: they are symbols
_LATIN1_LETTERS = frozenset(chr(c) for c in range(0xC0, 0x100)) - {"\u00d7", "\u00f7"}


def _utf8_cjk(raw: bytes) -> bool:
    """Do these bytes read as UTF-8 CJK: strictly, or with >= half of them as CJK when some bytes
    were lost (``decode(..., errors="ignore"/"replace")`` drops or replaces cp1252's 81 8D 8F 90 9D)."""
    try:
        return CJK_RUNS.search(raw.decode("utf-8")) is not None
    except UnicodeDecodeError:
        pass
    return 3 * run_chars(CJK_RUNS, raw.decode("utf-8", errors="replace")) * 2 >= len(raw)


def _gb2312_mojibake(run: str, raw: bytes) -> bool:
    """Is this run GB18030 Chinese read as Latin-1 (see the module docstring, signature 3)."""
    if min(raw) < 0xA1 or max(raw) > 0xFE or len(set(run)) < 2:
        return False
    if len(run) < 4 and _LATIN1_LETTERS.isdisjoint(run):
        return False
    # leniently: normalisation removes U+00AD (soft hyphen = GBK trail byte AD, as in 经 BE AD),
    # which leaves a run with an odd byte; most of it must still read as CJK (2 bytes each)
    return 4 * run_chars(CJK_RUNS, raw.decode("gb18030", errors="replace")) >= len(raw)


def _latin1_mojibake_chars(text: str) -> int:
    """Characters of ``text`` in runs of Latin-1/cp1252 characters that are mojibake."""
    bad = 0
    for run in _LATIN_RUNS.findall(text):
        for codec in ("cp1252", "latin-1"):
            try:
                raw = run.encode(codec)
            except UnicodeEncodeError:
                continue
            if _utf8_cjk(raw) or _gb2312_mojibake(run, raw):
                bad += len(run)
                break
    return bad


class MojibakeFilter(FeatureFilter):
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

    def suspects(self, cf: ChunkFeatures) -> np.ndarray:
        # each test of ``judge`` that can remove, by its cheap bound: a replacement or private-use
        # character, or 锟 (the start of 锟斤拷); the GB18030 lead-byte count's first bound; Latin
        # characters over the ratio. Texts counted by the regexes (no code points) are judged.
        out = ~cf.readable
        if self.max_replacement_ratio is not None:
            out |= (cf.bad > 0) | (self.max_replacement_ratio < 0)  # (a ratio below 0 removes any text)
            out |= cf.holding(_KUN[0]) & (cf.cjk > 0)
        if self.max_gbk_utf8_share is not None:
            cjk = cf.cjk
            bounded = 1.5 * (2 * cf.gblead_chars) / np.maximum(cjk, 1) <= self.max_gbk_utf8_share
            out |= (cjk >= self.min_cjk_for_gbk_test) & ~bounded
        r = self.max_latin1_ratio
        if r is not None:
            out |= (cf.latin >= 2) & (share(cf.latin, cf.visible) > r) if r >= 0 else cf.latin >= 0
        return out & (cf.visible > 0)

    def judge(self, ft: Features) -> bool | tuple[bool, str]:
        text = ft.text
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
            ratio = min(1.0, _latin1_mojibake_chars(text) / vis)  # C1 controls (\x85) are whitespace
            if ratio > self.max_latin1_ratio:
                return False, f"mojibake: latin-1 {fmt(ratio)} > {self.max_latin1_ratio}"
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
