"""The approximate token count: numpy per batch, the same numbers as its regex definition."""

from __future__ import annotations

import random

import pytest

from curation import tokens
from curation.tokens import TokenCounter, approx_counts

TRICKY = ["", " ", "abc", "abc def", "中文，测试。", "COVID-19患者2例", "a\u3000b\xa0c\u2028d\x85e\x1cf\x0bg", "ａｂｃ１２３",
          "١٢٣", "é", "\U0001F600x", "\ud800", "x_y", "  lead", "trail  ", "\n\n"]


def _definition(text: str) -> int:
    return len(tokens._TOKEN_RE.findall(text))


def test_tricky_texts_count_as_the_regex():
    assert approx_counts(TRICKY).tolist() == [_definition(t) for t in TRICKY]
    assert TokenCounter().count_many(TRICKY) == sum(map(_definition, TRICKY))


@pytest.mark.parametrize("batch_chars", [1, 7, 1 << 16])
def test_random_batches_count_as_the_regex(monkeypatch, batch_chars):
    # a letter run must not continue from one text into the next, whatever the batch boundaries
    monkeypatch.setattr(tokens, "_BATCH_CHARS", batch_chars)
    rng = random.Random(batch_chars)
    alphabet = ["a", "Z", "9", " ", "\t", "\n", "\u3000", "\xa0", "中", "，", "ａ", "_", "-", "\U00020000"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(3000)]
    assert approx_counts(texts).tolist() == [_definition(t) for t in texts]


def test_count_column_reads_the_arrow_buffer_and_counts_as_count_many():
    """The stats count kept texts straight from their Arrow column (no Python string per row):
    same total as the list path, for sliced and chunked columns, both offset widths, astral
    characters, empty texts and texts longer than one decoding slice."""
    import pyarrow as pa

    from curation.tokens import TokenCounter

    texts = ["𠀀abc 12 中文", "", "x y", "中" * 70_000, "ab" * 50_000, "é", "\n\t ", "A1b2 c3"] * 3
    counter = TokenCounter()
    for typ in (pa.string(), pa.large_string()):
        col = pa.chunked_array([pa.array(texts[:10], typ), pa.array(texts[10:], typ)])
        assert counter.count_column(col) == counter.count_many(texts)
        assert counter.count_column(col.chunk(1).slice(3)) == counter.count_many(texts[13:])
