"""Which texts of a chunk normalisation can change, in one compiled pass (numba).

``Normalize`` runs its regexes over a whole chunk joined by NUL. Most QA records hold nothing they
match: no zero-width character, no carriage return, no run of spaces, no space that is not " ",
nothing before a line end, no blank lines, no full-width letter or digit. The regexes still scan
every character: ~1.4 s a million records for the whitespace patterns alone. Here each
text is tested once for anything a pattern could match; only the texts flagged go through the
regexes, which decide. A flag is a superset: a text not flagged is one the patterns leave as is.
"""

from __future__ import annotations

import numpy as np

from curation.compiled import njit


def spans(texts: list[str], joined: str, sep: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(code points of ``joined``, start and end of each text in them): ``joined`` is ``sep.join(texts)``.
    The last answer again for the same ``joined`` and ``texts`` objects: the scans of one chunk
    share it while no step changed the chunk (nearly always). Both, and their length: ``joined``
    alone may be one string for other texts (``"".join([])`` and ``"".join([""])`` are the same
    interned ``""``)."""
    global _last
    if _last is not None and _last[0] is joined and _last[1] is texts and _last[2] == len(texts):
        return _last[3]
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    ends = np.cumsum(lens + len(sep)) - len(sep)
    out = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32), ends - lens, ends
    _last = (joined, texts, len(texts), out)
    return out


_last: tuple | None = None  # spans' last (joined, texts, their number, answer)


def whitespace_changes(texts: list[str], joined: str, sep: str) -> np.ndarray:
    """Per text: could ``clean_whitespace(text, strip=False)`` change it (any ``max_blank_lines``)."""
    return _whitespace_changes(*spans(texts, joined, sep))


def fullwidth_alnum(texts: list[str], joined: str, sep: str) -> np.ndarray:
    """Per text: does it hold a full-width ASCII letter or digit (``normalize._FULLWIDTH_ALNUM_RE``)."""
    return _fullwidth(*spans(texts, joined, sep))


def edge_space(texts: list[str], joined: str, sep: str) -> np.ndarray:
    """Per text: does it start or end with a character ``str.strip`` removes (``str.isspace``)."""
    return _edge_space(*spans(texts, joined, sep), _SPACES)


# every code point ``str.isspace`` holds, from Python itself (29 of them, the highest U+3000)
_SPACES = np.array([c for c in range(0x110000) if chr(c).isspace()], dtype=np.uint32)


@njit(cache=True, nogil=True)
def _is_space(ch, spaces):  # pragma: no cover - compiled
    if ch > spaces[-1]:  # every CJK ideograph: one comparison
        return False
    for s in spaces:
        if s == ch:
            return True
    return False


@njit(cache=True, nogil=True)
def _edge_space(c, starts, ends, spaces):  # pragma: no cover - compiled
    out = np.zeros(len(starts), dtype=np.bool_)
    for t in range(len(starts)):
        if ends[t] > starts[t]:
            out[t] = _is_space(c[starts[t]], spaces) or _is_space(c[ends[t] - 1], spaces)
    return out


@njit(cache=True, nogil=True)
def _hspace(ch):  # pragma: no cover - compiled
    # normalize._HSPACE: [ \t\u00a0\u2000-\u200a\u202f\u205f]
    return ch == 32 or ch == 9 or ch == 0xA0 or 0x2000 <= ch <= 0x200A or ch == 0x202F or ch == 0x205F


@njit(cache=True, nogil=True)
def _whitespace_changes(c, starts, ends):  # pragma: no cover - compiled
    out = np.zeros(len(starts), dtype=np.bool_)
    for t in range(len(starts)):
        prev = np.uint32(0)
        newlines = 0  # "\n" in a row
        for i in range(starts[t], ends[t]):
            ch = c[i]
            # _ZERO_WIDTH_RE, and "\r" (line ends unified)
            if ch == 13 or ch == 0x200B or ch == 0x200C or ch == 0x200D or ch == 0x2060 or ch == 0xFEFF or ch == 0xAD:
                out[t] = True
                break
            # _HSPACE_RUNS: a run of two or more, or one that is not " "
            if _hspace(ch) and (ch != 32 or _hspace(prev)):
                out[t] = True
                break
            if ch == 10:
                # _TRAILING: [ \t\u3000]+ before a line end; _BLANK_LINES: "\n" ([ \t\u3000]* "\n"){2,},
                # which without a trailing space is three line ends in a row
                if prev == 32 or prev == 9 or prev == 0x3000:
                    out[t] = True
                    break
                newlines = newlines + 1 if prev == 10 else 1
                if newlines >= 3:
                    out[t] = True
                    break
            prev = ch
    return out


@njit(cache=True, nogil=True)
def _fullwidth(c, starts, ends):  # pragma: no cover - compiled
    out = np.zeros(len(starts), dtype=np.bool_)
    for t in range(len(starts)):
        for i in range(starts[t], ends[t]):
            ch = c[i]
            if 0xFF10 <= ch <= 0xFF5A and (ch <= 0xFF19 or 0xFF21 <= ch <= 0xFF3A or ch >= 0xFF41):
                out[t] = True
                break
    return out
