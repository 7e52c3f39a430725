"""Token counts for Table-1 figures, always reported with the tokenizer that made them.

No tokenizer can be downloaded here, so the default is a named approximation that is close to
a Chinese-extended LLaMA vocabulary (Ziya-LLaMA, the paper's base): one token per CJK
character, one per run of Latin letters or digits, one per other visible symbol. A recipe's
``tokenizer:`` (a local ``tokenizer.json``) gives exact counts instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from cumed.errors import CumedError
from cumed.hashing import sha256_file

APPROX_NAME = "cumed-approx-v1 (1 token per CJK char, Latin/digit run, or other symbol)"
_TOKEN_RE = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")


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

    def count_many(self, texts: list[str]) -> int:
        if self._tok is not None:
            return sum(len(e.ids) for e in self._tok.encode_batch(texts, add_special_tokens=False))
        return sum(len(_TOKEN_RE.findall(t)) for t in texts)
