"""Share of decoration symbols (#, *, |, …, ★, emoji...) among visible characters."""

from __future__ import annotations

from curation.steps.filters._text import MaxShareFilter


class SymbolRatioFilter(MaxShareFilter):
    """Remove documents where symbols (see ``_text.SYMBOL_CLASS``) exceed ``max_ratio`` of visible chars.

    Args:
        max_ratio: default 0.10, Gopher's ``max_symbol_word_ratio`` (Rae et al. 2021, Table A1:
            "#" and "..." per word <= 0.1; datatrove ``GopherQualityFilter`` default). Per character
            rather than per word it is stricter in count but our symbol class is wider. Markdown
            tables (``|``) in ChinaXiv papers reach ~0.05; arrows and math operators (↑ ≥ ±) are
            not symbols here because lab reports use them.
    """

    name = "symbol_ratio"
    feature = "symbol"

    def __init__(self, max_ratio: float | None = 0.10, exclusion_writer=None):
        super().__init__(max_ratio, exclusion_writer)
