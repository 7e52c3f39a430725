"""Text normalisation for Chinese medical documents: HTML residue, Unicode forms, Traditional ->
Simplified, whitespace.

Each normalisation is a plain function (``clean_html``, ``normalize_unicode``, ``to_simplified``,
``clean_whitespace``) and the ``Normalize`` step runs the enabled ones in that order, counting in
its stats how many documents each one actually changed (``changed_html``, ``changed_unicode``,
``changed_t2s``, ``changed_whitespace``) besides the base class's ``changed``: a conversion that
silently does nothing shows up as a zero.

Deliberately not done here: mojibake repair (text decoded with the wrong codec is removed by
``curation.steps.filters.mojibake``, not guessed back), PII (``curation.steps.pii``), and any
rewriting of numbers or units (``mg`` vs ``㎎`` is left as written; see ``normalize_unicode``).
"""

from __future__ import annotations

import html
import re
import unicodedata
from functools import cached_property
from operator import ne

import numpy as np

from curation.metrics import add_counts
from curation.steps.base import CumedTransform
from curation.steps.normalize_scan import edge_space, fullwidth_alnum, whitespace_changes
from curation.steps.opencc_changes import changing_table, may_change

# ---------------------------------------------------------------- HTML residue
# Only known HTML tag names are touched, so "<ID_CARD>", "a<b", "P<0.05" and "<5 mm" survive.
_BLOCK_TAGS = "p|div|br|li|tr|table|thead|tbody|h[1-6]|ul|ol|blockquote|hr|html|body|center|section|article"
_INLINE_TAGS = "span|a|b|i|u|em|strong|font|img|sup|sub|small|big|td|th|col|colgroup|caption|label|s|strike|code|pre|abbr|cite"
_CELL_TAGS = re.compile(r"</t[dh]\s*>", re.I)  # end of a table cell -> a separator, so cells do not glue together
_BLOCK_RE = re.compile(rf"</?(?:{_BLOCK_TAGS})\b[^<>]{{0,500}}?/?>", re.I)
_INLINE_RE = re.compile(rf"</?(?:{_INLINE_TAGS})\b[^<>]{{0,500}}?/?>", re.I)
_COMMENT_RE = re.compile(r"<!--.*?-->", re.S)
_ENTITY_RE = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def clean_html(text: str) -> str:
    """Decode HTML entities (``&nbsp;`` ``&amp;`` ``&#x4E2D;``) and drop stray tags.

    Block tags become a newline, table cells a `` | `` separator, inline tags nothing. Entities
    are decoded after the tags are gone so an encoded ``&lt;p&gt;`` stays literal text.
    """
    if "<" in text:
        text = _COMMENT_RE.sub("", text)
        text = _CELL_TAGS.sub(" | ", text)
        text = _BLOCK_RE.sub("\n", text)
        text = _INLINE_RE.sub("", text)
    if "&" in text:
        text = _ENTITY_RE.sub(lambda m: html.unescape(m.group(0)), text)
    return text


# ---------------------------------------------------------------- Unicode
# Full-width ASCII letters and digits (Ａ-Ｚ ａ-ｚ ０-９) -> ASCII. Full-width punctuation is kept.
_FULLWIDTH_ALNUM = {
    **{cp: cp - 0xFEE0 for cp in range(0xFF10, 0xFF1A)},
    **{cp: cp - 0xFEE0 for cp in range(0xFF21, 0xFF3B)},
    **{cp: cp - 0xFEE0 for cp in range(0xFF41, 0xFF5B)},
}

_FULLWIDTH_ALNUM_RE = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")


def _halfwidth(m: re.Match) -> str:
    return chr(_FULLWIDTH_ALNUM[ord(m.group())])


def normalize_unicode(text: str) -> str:
    """NFC, then full-width ASCII letters/digits to half-width; CJK punctuation untouched.

    Why not NFKC: it folds Chinese full-width punctuation into ASCII (，。！？：；（） -> ,.!?:;()
    except 。), destroying the punctuation style of every Chinese sentence, and it rewrites
    units and ligatures (㎎ -> mg, ² -> 2: ``m²`` would become ``m2``). NFC only composes
    characters canonically (same glyph), and the explicit table maps ``３ｍｇ`` -> ``3mg`` and
    ``ＣＴ`` -> ``CT`` so lab values and abbreviations match however they were typed.
    """
    if not text.isascii():
        if not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
        # one replacement per match, not str.translate (a dict lookup per character, ~50 MB/s:
        # 0.5 s per 250k records once a chunk of them is normalised as one text)
        text = _FULLWIDTH_ALNUM_RE.sub(_halfwidth, text)
    return text


# ---------------------------------------------------------------- whitespace
_ZERO_WIDTH_RE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_HSPACE = r"[ \t\u00a0\u2000-\u200a\u202f\u205f]"  # not U+3000: see below
# A run of horizontal whitespace becomes one space. A lone " " already is one, so the regex skips
# it: runs of two or more, or one other space character (the lookbehind: the character just
# matched is not " "). The same text as ``sub(" ")`` over every ``[...]+`` run, without a
# replacement per word gap of English text (ChinaXiv papers, KG entries): half the time.
_HSPACE_RUNS = re.compile(_HSPACE + r"(?:" + _HSPACE + r"+|(?<! ))")
_TRAILING = re.compile(r"[ \t\u3000]+\n")
_TRAILING_ENDS = (" \n", "\t\n", "\u3000\n")  # what every _TRAILING match ends with: a cheap test first
_BLANK_LINES = re.compile(r"\n(?:[ \t\u3000]*\n){2,}")


def clean_whitespace(text: str, max_blank_lines: int = 1, strip: bool = True) -> str:
    """Remove zero-width characters, unify line ends, collapse spaces, limit blank lines.

    Runs of horizontal whitespace (tabs, no-break and typographic spaces) become one space; the
    ideographic space U+3000 is left inside lines (Chinese indentation uses it) but removed at
    line ends like any trailing space. At most ``max_blank_lines`` empty lines stay between
    paragraphs; leading/trailing whitespace of the document is stripped (``strip=False``: left
    to the caller, ``Normalize.transform_batch``).
    """
    if not text.isascii():
        text = _ZERO_WIDTH_RE.sub("", text)  # one deletion per match, not str.translate (a lookup per character)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _HSPACE_RUNS.sub(" ", text)
    if any(end in text for end in _TRAILING_ENDS):
        text = _TRAILING.sub("\n", text)
    text = _BLANK_LINES.sub("\n" * (max_blank_lines + 1), text)
    return text if strip is False else text.strip()


SEP = "\x00"  # between the texts of a chunk normalised in one call (``Normalize.transform_batch``)


# ---------------------------------------------------------------- Traditional -> Simplified
def _load_opencc(config: str):
    try:
        import opencc
    except ImportError as e:  # pragma: no cover - opencc is a declared dependency
        raise ImportError("Traditional->Simplified conversion needs OpenCC: pip install opencc") from e
    try:
        return opencc.OpenCC(config)
    except Exception as e:
        raise ValueError(f"unknown OpenCC config {config!r}; use t2s, tw2s, hk2s or t2s.json") from e


class Normalize(CumedTransform):
    """Run the enabled normalisations on ``doc.text``; count documents changed by each.

    Args:
        html: decode entities and drop stray tags (``clean_html``). Default True.
        unicode: NFC + full-width alphanumerics to ASCII (``normalize_unicode``). Default True.
        t2s: OpenCC config for Traditional -> Simplified, e.g. ``"t2s"`` (OpenCC 1.4 accepts
            ``"t2s"`` and ``"t2s.json"``); ``None``/``False`` disables it. Default ``"t2s"``.
        whitespace: whitespace clean-up (``clean_whitespace``). Default True.
        max_blank_lines: blank lines kept between paragraphs. Default 1.
    """

    name = "normalize"

    def __init__(
        self,
        html: bool = True,
        unicode: bool = True,
        t2s: str | bool | None = "t2s",
        whitespace: bool = True,
        max_blank_lines: int = 1,
    ):
        super().__init__()
        self.html = html
        self.unicode = unicode
        self.t2s = "t2s" if t2s is True else (t2s or None)
        self.whitespace = whitespace
        self.max_blank_lines = max_blank_lines
        if self.t2s:
            self._converter  # fail at build time on a bad config, not on the first document

    @cached_property
    def _converter(self):
        return _load_opencc(self.t2s)

    @cached_property
    def _changing(self):
        return changing_table(self.t2s)

    def to_simplified(self, text: str) -> str:
        return self._converter.convert(text) if not text.isascii() else text

    def _simplify_joined(self, joined: str, texts: list[str]) -> str:
        """``to_simplified`` of the texts joined by ``SEP``: only the texts that hold a character
        the conversion can change (``opencc_changes``) go through OpenCC, together in one call."""
        if self._changing is None or joined.isascii():
            return self.to_simplified(joined)
        return _rewrite(joined, texts, may_change(texts, self._changing, joined, SEP), self._converter.convert)

    def _unicode_joined(self, joined: str, texts: list[str]) -> str:
        """``normalize_unicode`` of the texts joined by ``SEP``: when the whole is NFC already (nearly
        always), only the texts holding a full-width letter or digit go through the regex."""
        if joined.isascii() or not unicodedata.is_normalized("NFC", joined):
            return normalize_unicode(joined)
        return _rewrite(joined, texts, fullwidth_alnum(texts, joined, SEP),
                        lambda sub: _FULLWIDTH_ALNUM_RE.sub(_halfwidth, sub))

    def _whitespace_joined(self, joined: str, texts: list[str]) -> str:
        """``clean_whitespace`` (no strip) of the texts joined by ``SEP``: only over the texts it can
        change (``normalize_scan``; none of the benchmark's 1M QA records)."""
        return _rewrite(joined, texts, whitespace_changes(texts, joined, SEP),
                        lambda sub: clean_whitespace(sub, self.max_blank_lines, strip=False))

    def _steps(self):
        if self.html:
            yield "html", clean_html
        if self.unicode:
            yield "unicode", normalize_unicode
        if self.t2s:
            yield "t2s", self.to_simplified
        if self.whitespace:
            yield "whitespace", lambda t: clean_whitespace(t, self.max_blank_lines)

    def transform(self, text: str) -> str:
        for label, fn in self._steps():
            new = fn(text)
            if new != text:
                self.stat_update(f"changed_{label}")
                text = new
        return text

    def transform_batch(self, texts: list[str]) -> list[str]:
        """``transform`` of every text, with the same counts. Unicode, t2s and whitespace run once
        over the texts joined by NUL (``SEP``), which none of them changes, removes or matches
        across (NFC never composes with NUL; OpenCC's phrases and the whitespace patterns hold no
        NUL); HTML (its tag patterns would reach across) and the final strip run per text. On
        ~150-character QA records the per-text calls, not the conversions, were half the cost.
        Texts holding a NUL themselves go one by one."""
        joined = SEP.join(texts)
        if len(texts) < 2 or joined.count(SEP) != len(texts) - 1:
            return [self.transform(t) for t in texts]
        counts = {}
        if self.html:
            counts["html"] = 0
            if "<" in joined or "&" in joined:  # clean_html looks for nothing else
                new = list(map(clean_html, texts))
                counts["html"] = sum(map(ne, texts, new))
                if counts["html"]:
                    texts, joined = new, SEP.join(new)
        whole = []  # (label, function of the joined text and the texts it joins)
        if self.unicode:
            whole.append(("unicode", self._unicode_joined))
        if self.t2s:
            whole.append(("t2s", self._simplify_joined))
        if self.whitespace:
            whole.append(("whitespace", self._whitespace_joined))
        for label, fn in whole:
            out = fn(joined, texts)
            if label == "whitespace" and out is joined:  # only the strip of each text, which the joined run left out
                edges = np.flatnonzero(edge_space(texts, joined, SEP)).tolist()
                counts[label] = len(edges)  # a text flagged starts or ends with a space: strip changes it
                if edges:
                    texts = list(texts)
                    for i in edges:
                        texts[i] = texts[i].strip()
                    joined = SEP.join(texts)
                continue
            if label == "whitespace":
                new = list(map(str.strip, out.split(SEP)))
            elif out == joined:
                counts[label] = 0
                continue
            else:
                new = out.split(SEP)
            counts[label] = sum(map(ne, texts, new))
            texts, joined = new, out
        add_counts(self, {f"changed_{label}": n for label, n in counts.items()})  # = n stat_update()s
        return texts

    def __getstate__(self):  # the OpenCC handle is rebuilt in each worker
        state = self.__dict__.copy()
        state.pop("_converter", None)
        state.pop("_changing", None)
        return state


def _rewrite(joined: str, texts: list[str], flagged: np.ndarray, fn) -> str:
    """``joined`` (``SEP.join(texts)``) with the ``flagged`` texts replaced by ``fn`` of them, run
    once over those texts joined by ``SEP`` (which none of the normalisations reaches across)."""
    todo = np.flatnonzero(flagged).tolist()
    if not todo:
        return joined
    out = list(texts)
    for i, new in zip(todo, fn(SEP.join([texts[i] for i in todo])).split(SEP)):
        out[i] = new
    return SEP.join(out)


def to_simplified(text: str, config: str = "t2s") -> str:
    """Traditional -> Simplified with OpenCC (builds a converter each call: for one-off use)."""
    return _load_opencc(config).convert(text)


def build_normalize(config: dict | None = None) -> Normalize:
    """``steps.normalize`` of a recipe -> the step. Keys: html, unicode, t2s, whitespace, max_blank_lines."""
    return Normalize(**(config or {}))
