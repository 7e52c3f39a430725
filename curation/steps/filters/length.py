"""Minimum / maximum document length in visible (non-whitespace) characters.

Characters, not words: Chinese has no spaces, and datatrove's word counts need a tokenizer per
language (a wrong language code silently splits Chinese into one "word" per line).
"""

from __future__ import annotations

import numpy as np

from curation.steps.filters._text import ChunkFeatures, FeatureFilter, Features


class MinLengthFilter(FeatureFilter):
    """Remove documents shorter than ``min_chars`` (or longer than ``max_chars``) visible characters.

    Args:
        min_chars: default 20. Gopher's 50-word minimum (Rae et al. 2021, Table A1) would be about
            75 Chinese characters (jieba averages ~1.5 characters per word), which removes a
            quarter of the real consultations (title + question + answer), most of them complete
            and useful. 20 characters still drops empty/stub records (a title alone, "谢谢医生").
            Measured kept share per source: BENCHMARKS.md.
        max_chars: default None (off). Gopher's 100,000-word maximum is meant for web dumps; our
            longest documents are full papers (~100k characters) which we keep.
    """

    name = "min_length"

    def __init__(self, min_chars: int | None = 20, max_chars: int | None = None, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.min_chars = min_chars
        self.max_chars = max_chars

    def suspects(self, cf: ChunkFeatures) -> np.ndarray:
        n = cf.visible
        out = np.zeros(len(cf), dtype=bool)
        if self.min_chars is not None:
            out |= n < self.min_chars
        if self.max_chars is not None:
            out |= n > self.max_chars
        return out

    def judge(self, ft: Features) -> bool | tuple[bool, str]:
        n = ft.visible
        if self.min_chars is not None and n < self.min_chars:
            return False, f"too_short: {n} < {self.min_chars} chars"
        if self.max_chars is not None and n > self.max_chars:
            return False, f"too_long: {n} > {self.max_chars} chars"
        return True
