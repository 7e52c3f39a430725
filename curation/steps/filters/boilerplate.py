"""Boilerplate and advertising lines in Chinese web/app text (点击, 关注公众号, 扫码, 版权所有...).

``BoilerplateFilter`` removes a document whose lines are mostly boilerplate;
``BoilerplateLineCleaner`` (a transform) deletes the boilerplate lines of a document that is
otherwise kept. Matching is by keyword on short lines only: a long line that happens to contain
"点击" inside real prose ("点击感"...) is text, not navigation.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from curation.steps.base import CumedTransform, TextFilter
from curation.steps.filters._text import chunk_features

# Navigation, promotion, contact and legal lines seen on Chinese medical Q&A sites and WeChat
# reposts. Each entry is a regex fragment; keep them specific to avoid medical false positives.
BOILERPLATE_PATTERNS = (
    r"点击(?:这里|此处|进入|查看|下载|关注|咨询|阅读|链接|蓝字|上方|下方|右上角)",
    r"关注(?:我们|公众号|微信|微博|本号)",
    r"微信公众号", r"公众号[：:]", r"扫(?:描)?(?:码|二维码)", r"二维码",
    r"版权所有", r"版权声明", r"[©Ⓒ]|\(c\)\s*\d{4}|copyright", r"All rights reserved",
    r"免责声明", r"转载请注明", r"未经(?:许可|授权).{0,8}(?:转载|复制)", r"本文(?:来源|转载|仅供)",
    r"(?:加|添加)(?:微信|v信|vx|qq)", r"(?:联系|咨询)(?:电话|热线)", r"客服热线",
    r"在线咨询", r"立即(?:咨询|预约|下载|购买)", r"免费(?:咨询|领取|试用)",
    r"上一篇|下一篇|返回(?:首页|顶部)|网站地图|相关阅读|猜你喜欢|热门推荐|阅读原文",
    r"分享到|收藏本文|点赞|评论\(\d+\)",
    r"ICP备\d+|京ICP|沪ICP|粤ICP",
)
_BOILER_RE = re.compile("|".join(BOILERPLATE_PATTERNS), re.I)
_LINES = re.compile(r"\n")

# Pre-check (speed only): every match of _BOILER_RE contains one of these characters or
# character pairs, with the case variants IGNORECASE allows for the Latin ones (c, y, r, v, q, p
# have none outside ASCII). One per pattern: 点击 关注 公众 扫码/扫描/扫二 维码 版权 ©/Ⓒ/ⓒ (c
# (c)-year, yr copyright, rv reserved, 免责 转载 未经 本文, 加微/加v/加q, 电话/热线, 线咨 立即
# 免费, 一篇 返回 地图 阅读 你喜 热门, 享到 藏本 点赞 评论, cp ICP. A document without any of
# them cannot match, so the regex (~35 MB/s with IGNORECASE) runs only on the others. Looking
# for them is one search for these literals (``_ANCHOR_RE``): ~640 MB/s on 80k-character texts and
# ~1 us a 150-character QA record, where the numpy code point tables it replaced cost ~25 us a
# record in per-call overhead (6.5 s of CPU per 250k records).
_ANCHOR_CHARS = "©Ⓒⓒ"
_ANCHOR_PAIRS = (
    "点击 关注 公众 扫码 扫描 扫二 维码 版权 (c (C yr yR Yr YR rv rV Rv RV 免责 转载 未经 本文 加微 加v 加V 加q 加Q "
    "电话 热线 线咨 立即 免费 一篇 返回 地图 阅读 你喜 热门 享到 藏本 点赞 评论 cp cP Cp CP"
).split()
_ANCHOR_RE = re.compile("|".join(re.escape(a) for a in (*_ANCHOR_CHARS, *_ANCHOR_PAIRS)))


@lru_cache(maxsize=1)
def _anchor_tables():
    from curation.steps.filters._anchors import anchor_tables

    return anchor_tables(_ANCHOR_CHARS, _ANCHOR_PAIRS)


def may_match(text: str) -> bool:
    """False only when ``_BOILER_RE`` provably finds nothing in ``text`` (see ``_ANCHOR_PAIRS``)."""
    return _ANCHOR_RE.search(text) is not None


def boilerplate_lines(text: str, max_line_chars: int) -> tuple[int, int, int, int]:
    """(boilerplate lines, non-empty lines, boilerplate chars, chars) of ``text``."""
    n = bad = chars = bad_chars = 0
    for line in _LINES.split(text):
        s = line.strip()
        if not s:
            continue
        n += 1
        chars += len(s)
        if len(s) <= max_line_chars and _BOILER_RE.search(s):
            bad += 1
            bad_chars += len(s)
    return bad, n, bad_chars, chars


class BoilerplateFilter(TextFilter):
    """Remove documents in which boilerplate lines dominate.

    Args:
        max_line_frac: remove when more than this share of non-empty lines is boilerplate.
            Default 0.5: "dominate" taken literally; C4 removes single boilerplate lines
            (Raffel et al. 2020, "javascript", "lorem ipsum", cookie notices), which the
            line cleaner does here, and drops a page only when little is left.
        max_line_chars: a line longer than this is prose, never boilerplate (default 60;
            navigation/promo lines on Chinese sites are short, consultations are not).
    """

    name = "boilerplate"

    def __init__(self, max_line_frac: float | None = 0.5, max_line_chars: int = 60, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.max_line_frac = max_line_frac
        self.max_line_chars = max_line_chars

    def filter_texts(self, texts: list[str]) -> list[bool | tuple[bool, str]]:
        # The anchors looked for over the chunk's code points in one compiled pass
        # (``_anchors``): only the texts holding one are judged.
        from curation.steps.filters._anchors import holding_anchor  # numba: loaded when used

        out: list = [True] * len(texts)
        if self.max_line_frac is None or not texts:
            return out
        cf = chunk_features(texts)
        check = ~cf.readable
        ok = np.flatnonzero(cf.readable)
        check[ok] = holding_anchor(cf.cp, cf.starts[ok], cf.ends[ok], _anchor_tables())
        for i in np.flatnonzero(check).tolist():
            out[i] = self.verdict(texts[i])
        return out

    def verdict(self, text: str) -> bool | tuple[bool, str]:
        if self.max_line_frac is None or not may_match(text):
            return True
        # no whole-text search first: without a matching line bad = 0 and the document is kept
        # anyway, and matching only the short lines is ~5x cheaper on long papers
        if self.max_line_frac < 0 and not _BOILER_RE.search(text):
            return True
        bad, n, _, _ = boilerplate_lines(text, self.max_line_chars)
        if n and bad / n > self.max_line_frac:
            return False, f"boilerplate: {bad}/{n} lines > {self.max_line_frac}"
        return True


class BoilerplateLineCleaner(CumedTransform):
    """Delete short boilerplate lines (see ``BOILERPLATE_PATTERNS``) and count lines removed
    (stat ``boilerplate_lines``). Run it after ``BoilerplateFilter`` so that documents that are
    mostly boilerplate are removed whole, with a reason, rather than silently shrunk."""

    name = "boilerplate_lines"

    def __init__(self, max_line_chars: int = 60):
        super().__init__()
        self.max_line_chars = max_line_chars

    def transform(self, text: str) -> str:
        if not may_match(text):  # else the line loop below (no match: text unchanged)
            return text
        out = []
        removed = 0
        for line in text.split("\n"):
            s = line.strip()
            if s and len(s) <= self.max_line_chars and _BOILER_RE.search(s):
                removed += 1
                continue
            out.append(line)
        if removed:
            self.stat_update("boilerplate_lines", value=removed)
        return "\n".join(out)
