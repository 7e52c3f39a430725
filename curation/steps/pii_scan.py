"""Which texts of a chunk could hold PII at all: ``pii._maybe`` for many texts in one compiled
pass (numba).

Why: 92 % of QA records hold none of what the redaction patterns need (``@``, 号, 信, QQ, vx, four
digits in a row, a dotted quad), and proving that one text at a time (seven substring tests and a
regex search) was half of the PII step: ~2 us a record. Here it is one scan of the chunk's code
points; only the texts it flags go through ``redact``, which tests them again and does the work.

Same answer as ``_maybe``, character for character: its literals (WeChat and wechat included), and its regex
``\\d(?:\\d{3}|\\.\\d{1,3}\\.\\d)`` where ``\\d`` is Python's (every Unicode decimal digit: the
table is built by running ``\\d`` itself over every code point).
"""

from __future__ import annotations

import re

import numpy as np

from curation.compiled import njit

_DIGITS: np.ndarray | None = None


def decimal_digits() -> np.ndarray:
    """bool per code point: what Python's ``\\d`` matches (built once per process, ~20 ms)."""
    global _DIGITS
    if _DIGITS is None:
        points = np.arange(0x110000, dtype=np.uint32)
        every = points[(points < 0xD800) | (points >= 0xE000)].tobytes().decode("utf-32-le")  # no surrogates
        table = np.zeros(0x110000, dtype=np.bool_)
        cps = np.array([ord(m.group()) for m in re.finditer(r"\d", every)], dtype=np.int64)
        table[cps] = True
        _DIGITS = table
    return _DIGITS


def maybe_pii(cps: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """bool per text (``cps`` laid end to end, ``lens`` each): ``pii._maybe`` of the text."""
    return _maybe_many(np.ascontiguousarray(cps, dtype=np.uint32), np.asarray(lens, dtype=np.int64), decimal_digits())


@njit(cache=True, nogil=True)
def _maybe_many(c, lens, digit):  # pragma: no cover - compiled
    out = np.zeros(len(lens), dtype=np.bool_)
    start = 0
    for t in range(len(lens)):
        end = start + lens[t]
        for i in range(start, end):
            ch = c[i]
            if ch == 0x40 or ch == 0x53F7 or ch == 0x4FE1:  # @ 号 信
                out[t] = True
                break
            if i + 1 < end:
                nx = c[i + 1]
                if (ch == 0x51 and nx == 0x51) or (ch == 0x71 and nx == 0x71) or (ch == 0x76 and nx == 0x78) \
                        or (ch == 0x56 and nx == 0x58):  # QQ qq vx VX
                    out[t] = True
                    break
                if (ch == 0x57 or ch == 0x77) and i + 5 < end and nx == 0x65 and c[i + 3] == 0x68 \
                        and c[i + 4] == 0x61 and c[i + 5] == 0x74 \
                        and ((ch == 0x57 and c[i + 2] == 0x43) or (ch == 0x77 and c[i + 2] == 0x63)):  # WeChat wechat
                    out[t] = True
                    break
            if digit[ch]:
                if i + 3 < end and digit[c[i + 1]] and digit[c[i + 2]] and digit[c[i + 3]]:  # \d{4}
                    out[t] = True
                    break
                if i + 1 < end and c[i + 1] == 0x2E:  # \d\.\d{1,3}\.\d: the run after the dot,
                    j, k = i + 2, 0  # up to 3 digits (a longer run cannot be followed by a dot
                    while j < end and k < 3 and digit[c[j]]:  # at any split), then a dot and a digit
                        j += 1
                        k += 1
                    if k >= 1 and j + 1 < end and c[j] == 0x2E and digit[c[j + 1]]:
                        out[t] = True
                        break
        start = end
    return out
