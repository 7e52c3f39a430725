"""Token counts for Table-1 figures, always reported with the tokenizer that made them.

No tokenizer can be downloaded here, so the default is a named approximation that is close to
a Chinese-extended LLaMA vocabulary (Ziya-LLaMA, the paper's base): one token per CJK
character, one per run of Latin letters or digits, one per other visible symbol. A recipe's
``tokenizer:`` (a local ``tokenizer.json``) gives exact counts instead.

The approximation is counted for many texts at once in numpy (``approx_counts``): one class
lookup per code point (whitespace / ASCII letter or digit / other), then "other" characters
plus the starts of letter-and-digit runs. Same numbers as ``len(_TOKEN_RE.findall(text))`` per
text, ~5x faster: counting the kept texts of the seed corpus took 1.4 s of a build's publish.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from cumed.errors import CumedError
from cumed.hashing import sha256_file

APPROX_NAME = "cumed-approx-v1 (1 token per CJK char, Latin/digit run, or other symbol)"
_TOKEN_RE = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")  # the definition; approx_counts counts the same
_SPACE, _ALNUM, _OTHER = 0, 1, 2
_BATCH_CHARS = 1 << 16  # code points per numpy pass: ~30 bytes of temporaries each (~2 MB)


@lru_cache(maxsize=1)
def _classes() -> np.ndarray:
    """Class of every code point: ``_SPACE`` where ``\\s`` matches (Python's Unicode whitespace,
    taken from the regex itself), ``_ALNUM`` for ``[A-Za-z0-9]``, else ``_OTHER``."""
    table = np.full(0x110000, _OTHER, dtype=np.uint8)
    for start in range(0, 0x110000, 0x10000):  # every code point, a plane at a time
        plane = np.arange(start, start + 0x10000, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
        table[[ord(c) for c in re.findall(r"\s", plane)]] = _SPACE
        table[[ord(c) for c in re.findall(r"[A-Za-z0-9]", plane)]] = _ALNUM
    return table


def approx_counts(texts: list[str]) -> np.ndarray:
    """``len(_TOKEN_RE.findall(t))`` for every text (int64 array), a batch of texts per numpy pass."""
    out = np.zeros(len(texts), dtype=np.int64)
    start = 0
    while start < len(texts):
        end, size = start, 0
        while end < len(texts) and (end == start or size + len(texts[end]) <= _BATCH_CHARS):
            size += len(texts[end])
            end += 1
        out[start:end] = _approx_batch(texts[start:end])
        start = end
    return out


def _approx_batch(texts: list[str]) -> np.ndarray:
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    # surrogatepass: a lone surrogate (possible in a Python str) is one "other" character, as for the regex
    cps = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return _approx_codepoints(cps, lens)


def approx_column_total(column) -> int:
    """``approx_counts(column.to_pylist()).sum()`` for an Arrow string column, without making a
    Python string per row: one compiled pass over the column's UTF-8 buffer (``utf8_tokens``).
    The stats count every kept text at publish: 250k kept texts took 0.41 s as Python strings,
    0.19 s decoded a slice at a time for numpy, 0.09 s now (BENCHMARKS.md, issue #17)."""
    import pyarrow as pa

    from curation.utf8_tokens import utf8_token_total  # numba: loaded when used

    total = 0
    for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
        if chunk.null_count or not pa.types.is_string(chunk.type) and not pa.types.is_large_string(chunk.type):
            total += int(approx_counts([t for t in chunk.to_pylist() if t is not None]).sum())
            continue
        if not len(chunk):
            continue
        wide = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
        offsets = np.frombuffer(chunk.buffers()[1], dtype=wide)[chunk.offset:chunk.offset + len(chunk) + 1]
        data = np.frombuffer(chunk.buffers()[2], dtype=np.uint8)
        total += int(utf8_token_total(data, offsets.astype(np.int64), _classes()))
    return total


def _approx_codepoints(cps: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Token counts of texts given as their code points end to end and their lengths."""
    bounds = np.concatenate(([0], np.cumsum(lens)))
    cls = _classes()[cps]
    alnum = cls == _ALNUM
    token = cls == _OTHER
    token[1:] |= alnum[1:] & ~alnum[:-1]  # a run of letters and digits is one token: count its start
    first = bounds[:-1][lens > 0]
    token[first] |= alnum[first]  # a text's first character starts a run whatever ended the text before
    total = np.concatenate(([0], np.cumsum(token, dtype=np.int64)))
    return total[bounds[1:]] - total[bounds[:-1]]


class TokenCounter:
    def __init__(self, tokenizer: str | None = None):
        self._tok = None
        if tokenizer:
            path = Path(tokenizer)
            if not path.is_file():
                raise CumedError(f"tokenizer file {tokenizer} not found; give a local tokenizer.json or leave it unset")
            from tokenizers import Tokenizer

            self._tok = Tokenizer.from_file(str(path))
            self.name = f"{path.name} (sha256 {sha256_file(path)[:12]})"
        else:
            self.name = APPROX_NAME

    def count(self, text: str) -> int:
        if self._tok is not None:
            return len(self._tok.encode(text, add_special_tokens=False).ids)
        return len(_TOKEN_RE.findall(text))

    def count_column(self, column) -> int:
        """``count_many`` of an Arrow string column (the approximation reads its buffer directly)."""
        if self._tok is not None:
            return self.count_many(column.to_pylist())
        return approx_column_total(column)

    def count_many(self, texts: list[str]) -> int:
        if self._tok is not None:
            return sum(len(e.ids) for e in self._tok.encode_batch(texts, add_special_tokens=False))
        return int(approx_counts(texts).sum())
