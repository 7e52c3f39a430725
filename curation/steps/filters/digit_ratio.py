"""Share of digits among visible characters: tables of numbers, phone lists, OCR'd spreadsheets."""

from __future__ import annotations

from datatrove.data import Document

from curation.steps.base import CumedFilter
from curation.steps.filters._text import features, fmt


class DigitRatioFilter(CumedFilter):
    """Remove documents whose digits exceed ``max_ratio`` of the visible characters.

    Args:
        max_ratio: default 0.30. No published value for Chinese (FineWeb-2 has none; RedPajama-V2
            only exposes ``rps_doc_frac_chars_digits`` without a cut). Medical text is number-rich
            (doses, lab values, dates): on the real corpus the 99.9th percentile of the QA and
            encyclopedia sources is below 0.2 and results-heavy papers reach ~0.25; 0.30 removes
            only documents that are mostly numbers (see BENCHMARKS.md).
    """

    name = "digit_ratio"

    def __init__(self, max_ratio: float | None = 0.30, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.max_ratio = max_ratio

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if self.max_ratio is None:
            return True
        ft = features(doc.text)
        vis = ft.visible
        ratio = ft.digit / vis if vis else 0.0
        if ratio > self.max_ratio:
            return False, f"digit_ratio: {fmt(ratio)} > {self.max_ratio}"
        return True
