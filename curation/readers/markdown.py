"""``markdown``: one document per Markdown file (the ChinaXiv papers converted by MinerU).

What it does to a paper, and why:

- **Reference list dropped**: from the first line that is only a references title (``# 参考文献``,
  ``参考文献：``, ``【参考文献】``, ``8．参考文献``, ``References``...) or a line where
  ``参考文献`` ends the line or is directly followed by ``[1]`` / ``1.``, or an untitled list
  (a line starting ``[1]`` followed by one starting ``[2]``), to the end of the file. Citation lists are
  author/journal strings, not medical prose, and they are what near-duplicate detection trips
  on. Only 264 of the 765 papers use a Markdown heading for it, hence the looser patterns. What
  follows the references (often the English title and abstract) goes with them: the corpus is
  Chinese. A references title in the first 20% of a paper is ignored (a table of contents or a
  sentence, not the list).
- **Tables kept as text**: MinerU writes tables as HTML (``<table><tr><td>``); each row becomes a
  line with cells separated by a tab. Pipe tables (``| a | b |``) get the same treatment and
  their ``|---|`` rule lines are dropped.
- **Images dropped**: ``![...](...)`` links carry no text (captions are separate lines and stay).
- **LaTeX turned into plain text** (``math: text``, the default): MinerU emits OCR-spaced LaTeX
  such as ``$4 . 5 \\%$`` or ``$\\mathrm { ~ m L ~ }$``; kept raw it would teach the model
  markup noise, stripped it would lose the numbers. So ``$...$``/``$$...$$`` keep their content
  with symbols mapped to Unicode (``\\pm``→±, ``\\alpha``→α, ``\\geqslant``→≥, ``\\frac{a}{b}``→a/b),
  style commands and braces removed and OCR spaces squeezed (``4.5%``, ``mL``). Good for the
  numbers and units that make up most formulas here; a complex equation comes out as a flat
  string. ``math: keep`` leaves LaTeX as is, ``math: drop`` removes it.
- Heading marks (``#``) and Markdown escapes (``\\*``) are removed; the heading text stays.

Options: ``encoding`` (default utf-8), ``index`` (a JSON Lines file relative to the data folder
whose ``index_key`` field, default ``file``, is the Markdown path relative to the same folder;
its other fields go to metadata, ``title`` included), ``references`` (drop the reference list,
default true), ``math`` (text | keep | drop).

The record key is the file path (one document per file), so ids survive reordering.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator

from datatrove.data import Document

from curation.document import CORE_KEYS
from curation.readers.base import CumedReader, check_choice, decoded_lines

MATH_MODES = ("text", "keep", "drop")

_REF_TITLE = re.compile(
    r"^\s*(?:#+\s*)?(?:[\d.．、]+\s*|\[\d+\]\s*)?[【\[]?\s*(?:主要)?参\s*考\s*文\s*献\s*[】\]]?\s*"
    r"(?:[(（]?\s*references?\s*[)）]?)?\s*[:：]?\s*$"
    r"|^\s*(?:#+\s*)?(?:[\d.．、]+\s*)?(?:references?|bibliography)\s*[:：]?\s*$",
    re.IGNORECASE,
)
_REF_INLINE = re.compile(r"参\s*考\s*文\s*献\s*[:：]?\s*(?:\[1\]|［1］|1[.．、]\s*\S|$)")
_REF_FIRST = re.compile(r"^\s*[\[［]1[\]］]\s*\S")
_REF_SECOND = re.compile(r"^\s*[\[［]2[\]］]\s*\S")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
# (?:<html>\s*<body>\s*)?<table...: written to start with "<", so that re skips to the next "<"
# in C instead of trying the pattern at every position (10x faster on the papers; same matches)
_TABLE = re.compile(r"<(?:html>\s*<body>\s*<)?table[^>]*>(.*?)</table>(?:\s*</body>\s*</html>)?", re.S | re.I)
_ROW = re.compile(r"<tr[^>]*>(.*?)</tr>", re.S | re.I)
_CELL = re.compile(r"<t[dh][^>]*>(.*?)</t[dh]>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
_PIPE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.S)
# ( ?)\$...: group 1 is " $" or "$" (a branch of two literals re can skip to, as for _TABLE)
_INLINE_MATH = re.compile(r"( \$|\$)([^$\n]+?)\$( ?)")
_LATIN = re.compile(r"[A-Za-z0-9.,;:)\]]")
_MD_ESCAPE = re.compile(r"\\([*_#\[\]()`~>])")
_HEADING = re.compile(r"^\s*#{1,6}\s*", re.M)

SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ", "textmu": "μ", "nu": "ν",
    "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "upsilon": "υ", "phi": "φ", "varphi": "φ",
    "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ",
    "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
    "pm": "±", "mp": "∓", "times": "×", "div": "÷", "cdot": "·", "cdots": "⋯", "ldots": "…", "dots": "…",
    "sim": "～", "approx": "≈", "neq": "≠", "ne": "≠", "equiv": "≡", "geqslant": "≥", "geq": "≥", "ge": "≥",
    "leqslant": "≤", "leq": "≤", "le": "≤", "ll": "≪", "gg": "≫", "circ": "°", "degree": "°", "prime": "′",
    "in": "∈", "notin": "∉", "sum": "Σ", "prod": "Π", "int": "∫", "infty": "∞", "partial": "∂", "nabla": "∇",
    "forall": "∀", "exists": "∃", "triangle": "△", "setminus": "∖", "otimes": "⊗", "oplus": "⊕", "ast": "*",
    "star": "*", "mid": "|", "vert": "|", "lvert": "|", "rvert": "|", "Vert": "‖", "langle": "⟨", "rangle": "⟩",
    "rightarrow": "→", "to": "→", "leftarrow": "←", "Rightarrow": "⇒", "uparrow": "↑", "downarrow": "↓",
    "propto": "∝", "sqrt": "√", "cup": "∪", "cap": "∩", "subset": "⊂", "%": "%", "#": "#", "&": "&", "_": "_",
    "{": "(", "}": ")", "$": "$", "log": "log", "ln": "ln", "exp": "exp", "lg": "lg", "max": "max", "min": "min",
    "sin": "sin", "cos": "cos", "tan": "tan", "lim": "lim",
}
_SPACES = {",", ";", ":", "!", " ", "quad", "qquad", "enspace", "thinspace", "\\"}
_DROP_WITH_ARG = {"phantom", "hphantom", "vphantom", "label", "tag", "begin", "end"}
_CMD = re.compile(r"\\([A-Za-z]+|.)")
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_SQRT = re.compile(r"\\sqrt\s*\{([^{}]*)\}")


# Compiled once (re.sub with a pattern string looks it up in re's cache on every call: latex_to_text
# runs ~47 k times on the ChinaXiv papers), in the order of iterating _DROP_WITH_ARG as before.
_DROP_ARG_RES = [("\\" + name, re.compile(r"\\" + name + r"\s*\{[^{}]*\}")) for name in _DROP_WITH_ARG]
_SPACE_RUNS = re.compile(r"\s+")
_PADS = re.compile("\x01+")
_SINGLE_FRAC = re.compile(r"\((\w)\)/\((\w+)\)")


def latex_to_text(src: str) -> str:
    """OCR-spaced LaTeX to a plain Unicode string (see the module docstring).

    Each rewrite first checks (a substring test) that its pattern can match at all: most inline
    formulas are a symbol or two (``$p < 0.05$``, ``$\\alpha$``), and running every regex over
    them was most of the time of reading the ChinaXiv papers. Same output."""
    s = src
    for lead, rx in _DROP_ARG_RES:
        if lead in s:
            s = rx.sub(" ", s)
    if "frac" in s or "\\sqrt" in s:
        for _ in range(5):  # innermost first; nested fractions are rare
            s2 = _SQRT.sub(r"√(\1)", _FRAC.sub(r"(\1)/(\2)", s))
            if s2 == s:
                break
            s = s2

    def cmd(m: re.Match) -> str:
        name = m.group(1)
        if name in _SPACES:
            return "\x01"  # becomes a space after the whitespace squeeze below
        return SYMBOLS.get(name, "")  # style commands (mathrm, left, textcircled...) vanish

    if "\\" in s:
        s = _CMD.sub(cmd, s)
    s = s.replace("{", "").replace("}", "").replace("&", "\x01").replace("_", "").replace("\\", "")
    s = _SPACE_RUNS.sub("", s).replace("~", "\x01")  # MinerU spaces every token: "4 . 5" -> "4.5"
    if "\x01" in s:
        s = _PADS.sub(" ", s)
    s = s.strip()
    if ")/(" in s:
        s = _SINGLE_FRAC.sub(r"\1/\2", s)  # (a)/(b) -> a/b for single tokens
    return s


def _table_text(m: re.Match) -> str:
    rows = []
    for row in _ROW.findall(m.group(1)):
        cells = [html.unescape(_TAG.sub("", c)).strip() for c in _CELL.findall(row)]
        rows.append("\t".join(cells))
    return "\n" + "\n".join(rows) + "\n"


def _pipe_row(line: str) -> str | None:
    if _PIPE_RULE.match(line):
        return None
    s = line.strip()
    if s.startswith("|") and s.endswith("|") and s.count("|") >= 2:
        return "\t".join(c.strip() for c in s.strip("|").split("|"))
    return line


def cut_references(text: str) -> tuple[str, bool]:
    """Drop the reference list (see module docstring). Returns (text, whether a cut was made)."""
    lines = text.split("\n")
    floor = len(text) * 0.2
    pos = 0
    for i, line in enumerate(lines):
        if pos >= floor:
            if _REF_TITLE.match(line):
                return "\n".join(lines[:i]), True
            m = _REF_INLINE.search(line)
            if m:
                return "\n".join(lines[:i] + [line[: m.start()]]), True
            if _REF_FIRST.match(line):  # an untitled list: "[1] ..." followed by "[2] ..."
                nxt = next((ln for ln in lines[i + 1 :] if ln.strip()), "")
                if _REF_SECOND.match(nxt):
                    return "\n".join(lines[:i]), True
        pos += len(line) + 1
    return text, False


def markdown_to_text(md: str, math: str = "text", references: bool = True) -> tuple[str, bool]:
    text = md.replace("\r\n", "\n").lstrip("\ufeff")
    if references:
        text, cut = cut_references(text)
    else:
        cut = False
    text = _TABLE.sub(_table_text, text)
    text = _IMAGE.sub("", text)
    if math != "keep":
        conv = latex_to_text if math == "text" else (lambda s: "")
        text = _DISPLAY_MATH.sub(lambda m: "\n" + conv(m.group(1)) + "\n", text)

        def inline(m: re.Match) -> str:
            # MinerU pads math with spaces; keep a pad only next to Latin text ("n = 40 例" stays)
            before = m.group(1)[:-1] if m.start() > 0 and _LATIN.match(m.string[m.start() - 1]) else ""
            after = m.group(3) if m.end() < len(m.string) and _LATIN.match(m.string[m.end()]) else ""
            return before + conv(m.group(2)) + after

        text = _INLINE_MATH.sub(inline, text)
    text = _MD_ESCAPE.sub(r"\1", text)
    text = _HEADING.sub("", text)
    text = "\n".join(r for r in map(_pipe_row, text.split("\n")) if r is not None)
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return text, cut


class MarkdownReader(CumedReader):
    name = "📝 markdown"
    options = ("encoding", "index", "index_key", "references", "math")

    def __init__(
        self,
        data_folder,
        encoding: str = "utf-8",
        index: str | None = None,
        index_key: str = "file",
        references: bool = True,
        math: str = "text",
        **kwargs,
    ):
        super().__init__(data_folder, **kwargs)
        self.encoding = self.check_encoding(encoding)
        check_choice(math, MATH_MODES, "math mode", self.source)
        self.math = math
        self.references = bool(references)
        self.index = index
        self.index_key = index_key
        self._index: dict[str, dict] | None = None

    def load_index(self) -> dict[str, dict]:
        """The index file, by ``index_key`` (765 short lines for ChinaXiv: cheap to hold)."""
        if self._index is None:
            self._index = {}
            if self.index:
                with self.data_folder.open(self.index, "rb") as f:
                    for lineno, _, line, err in decoded_lines(f, "utf-8"):
                        if err is not None:
                            raise ValueError(f"source {self.source}: index {self.index} line {lineno}: bytes "
                                             f"{err.object[err.start:err.end]!r} are not valid utf-8; fix: repair "
                                             f"the line (the index is read as UTF-8 JSON lines)")
                        if not line.strip():
                            continue
                        try:
                            row = json.loads(line)
                        except json.JSONDecodeError as e:
                            raise ValueError(f"source {self.source}: index {self.index} line {lineno} is not JSON ({e.msg})") from None
                        if self.index_key not in row:
                            raise ValueError(f"source {self.source}: index {self.index} line {lineno} has no {self.index_key!r} field")
                        self._index[str(row.pop(self.index_key))] = row
        return self._index

    def read_records(self, filepath: str) -> Iterator[Document]:
        relpath = self.relpath(filepath)
        try:
            with self.data_folder.open(filepath, "rt", encoding=self.encoding) as f:
                md = f.read()
        except UnicodeDecodeError as e:
            yield self.error(
                f"{relpath}: bytes {e.object[e.start:e.end]!r} at byte {e.start} are not valid {self.encoding}; "
                "fix: set options.encoding to the file's encoding",
                filepath, relpath,
            )
            return
        with self.track_time():
            text, cut = markdown_to_text(md, self.math, self.references)
            meta = {k: v for k, v in self.load_index().get(filepath.lstrip("/"), {}).items() if k not in CORE_KEYS and k != "file"}
            if "title" not in meta:
                first = next((ln for ln in md.split("\n") if ln.strip()), "")
                meta["title"] = _HEADING.sub("", first).strip()[:200]
            meta["references_cut"] = cut
        yield self.document(text, filepath, relpath, **meta)
