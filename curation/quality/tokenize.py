"""Turn Chinese text into fastText input lines: jieba words or character n-grams.

fastText reads one document per line and splits on whitespace, so a tokenizer here returns a
single line of space-separated tokens: newlines become the token ``<nl>``, runs of whitespace
collapse, ASCII is lower-cased. Two tokenizers, compared in ``BENCHMARKS.md``:

- ``jieba``: jieba's precise mode (``HMM=False``, so the result depends only on the
  dictionary, not on the Viterbi guess for unknown words). jieba is initialised once per
  process with its log level raised, so nothing is printed and every worker gets the same
  dictionary.
- ``char``: one token per CJK character (ASCII letter/digit runs stay one token); fastText's
  ``wordNgrams`` then turns it into character n-grams.
"""

from __future__ import annotations

import logging
import re
import threading

TOKENIZERS = ("jieba", "char")
NEWLINE_TOKEN = "<nl>"

_WS = re.compile(r"[ \t\r\f\v\u3000\u00a0]+")
# ASCII words/numbers stay whole; every other non-space character is its own token.
_CHAR_TOKENS = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*|\S")

_jieba = None
_jieba_lock = threading.Lock()


def _get_jieba():
    """The jieba module, initialised once (dictionary loaded, logging silenced)."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba = jieba
    return _jieba


def _lines(text: str) -> list[str]:
    return [_WS.sub(" ", line).strip().lower() for line in str(text).splitlines()]


def _join(parts: list[list[str]]) -> str:
    out: list[str] = []
    for i, toks in enumerate(parts):
        if i and out and out[-1] != NEWLINE_TOKEN:
            out.append(NEWLINE_TOKEN)
        out.extend(toks)
    if out and out[-1] == NEWLINE_TOKEN:
        out.pop()
    return " ".join(out)


def jieba_tokens(text: str) -> str:
    jb = _get_jieba()
    parts = []
    for line in _lines(text):
        if line:
            parts.append([t for t in jb.lcut(line, HMM=False) if not t.isspace()])
    return _join(parts)


def char_tokens(text: str) -> str:
    return _join([_CHAR_TOKENS.findall(line) for line in _lines(text) if line])


def tokenize(text: str, tokenizer: str = "jieba") -> str:
    """One fastText input line (no newline inside) for ``text``."""
    if tokenizer == "jieba":
        return jieba_tokens(text)
    if tokenizer == "char":
        return char_tokens(text)
    raise ValueError(f"unknown tokenizer {tokenizer!r}; use one of {', '.join(TOKENIZERS)}")


def tokenize_many(texts, tokenizer: str = "jieba") -> list[str]:
    return [tokenize(t, tokenizer) for t in texts]
