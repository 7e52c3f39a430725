"""Share of digits among visible characters: tables of numbers, phone lists, OCR'd spreadsheets."""

from __future__ import annotations

from curation.steps.filters._text import MaxShareFilter


class DigitRatioFilter(MaxShareFilter):
    """Remove documents whose digits exceed ``max_ratio`` of the visible characters.

    Args:
        max_ratio: default 0.30. No published value for Chinese (FineWeb-2 has none; RedPajama-V2
            only exposes ``rps_doc_frac_chars_digits`` without a cut). Medical text is number-rich
            (doses, lab values, dates): on the real corpus the 99.9th percentile of the QA and
            encyclopedia sources is below 0.2 and results-heavy papers reach ~0.25; 0.30 removes
            only documents that are mostly numbers (see BENCHMARKS.md).
    """

    name = "digit_ratio"
    feature = "digit"

    def __init__(self, max_ratio: float | None = 0.30, exclusion_writer=None):
        super().__init__(max_ratio, exclusion_writer)
