"""Share of decoration symbols (#, *, |, …, ★, emoji...) among visible characters."""

from __future__ import annotations

from datatrove.data import Document

from curation.steps.base import CumedFilter
from curation.steps.filters._text import features, fmt


class SymbolRatioFilter(CumedFilter):
    """Remove documents where symbols (see ``_text.SYMBOL_CLASS``) exceed ``max_ratio`` of visible chars.

    Args:
        max_ratio: default 0.10, Gopher's ``max_symbol_word_ratio`` (Rae et al. 2021, Table A1:
            "#" and "..." per word <= 0.1; datatrove ``GopherQualityFilter`` default). Per character
            rather than per word it is stricter in count but our symbol class is wider. Markdown
            tables (``|``) in ChinaXiv papers reach ~0.05; arrows and math operators (↑ ≥ ±) are
            not symbols here because lab reports use them.
    """

    name = "symbol_ratio"

    def __init__(self, max_ratio: float | None = 0.10, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.max_ratio = max_ratio

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if self.max_ratio is None:
            return True
        ft = features(doc.text)
        vis = ft.visible
        ratio = ft.symbol / vis if vis else 0.0
        if ratio > self.max_ratio:
            return False, f"symbol_ratio: {fmt(ratio)} > {self.max_ratio}"
        return True
