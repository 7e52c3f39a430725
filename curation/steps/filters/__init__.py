"""Heuristic document filters for Chinese medical text, one concept per module (datatrove style).

``FILTERS`` maps the recipe's config names to classes; ``build_filters(config)`` builds them in
recipe order (``steps.filters: {min_length: {min_chars: 20}, cjk_ratio: {}, ...}``; a value of
``None``/``false`` skips that filter, an empty dict uses the defaults, an empty config builds
every filter with its defaults in ``FILTERS`` order — cheap checks first).
"""

from __future__ import annotations

from curation.steps.filters.boilerplate import BoilerplateFilter, BoilerplateLineCleaner
from curation.steps.filters.cjk_ratio import CJKRatioFilter
from curation.steps.filters.digit_ratio import DigitRatioFilter
from curation.steps.filters.length import MinLengthFilter
from curation.steps.filters.lexicon_density import LexiconDensityFilter
from curation.steps.filters.mojibake import MojibakeFilter
from curation.steps.filters.repetition import CharNGramRepetitionFilter, LineRepetitionFilter
from curation.steps.filters.symbol_ratio import SymbolRatioFilter

FILTERS: dict[str, type] = {
    "min_length": MinLengthFilter,
    "mojibake": MojibakeFilter,
    "cjk_ratio": CJKRatioFilter,
    "symbol_ratio": SymbolRatioFilter,
    "digit_ratio": DigitRatioFilter,
    "boilerplate": BoilerplateFilter,
    "line_repetition": LineRepetitionFilter,
    "char_repetition": CharNGramRepetitionFilter,
    "lexicon_density": LexiconDensityFilter,
}


def enabled_filters(config: dict) -> dict[str, dict]:
    """Recipe ``steps.filters`` mapping -> ``{name: kwargs}`` of the filters that run, in order:
    ``None``/``False`` leaves one off, ``True`` means its defaults; an unknown name is an error."""
    out = {}
    for name, kwargs in config.items():
        if name not in FILTERS:
            raise ValueError(f"unknown filter {name!r} in steps.filters; choose from {', '.join(FILTERS)}")
        if kwargs is None or kwargs is False:
            continue
        out[name] = {} if kwargs is True else dict(kwargs)
    return out


def build_filters(config: dict | None = None) -> dict:
    """Recipe ``steps.filters`` mapping -> ``{name: filter instance}`` in the mapping's order."""
    config = dict(config or {}) or {name: {} for name in FILTERS}
    out = {}
    for name, kwargs in enabled_filters(config).items():
        try:
            out[name] = FILTERS[name](**kwargs)
        except TypeError as e:
            raise ValueError(f"bad options for filter {name!r}: {e}; see {FILTERS[name].__name__}'s docstring") from e
    return out


__all__ = [
    "FILTERS",
    "build_filters",
    "enabled_filters",
    "BoilerplateFilter",
    "BoilerplateLineCleaner",
    "CJKRatioFilter",
    "CharNGramRepetitionFilter",
    "DigitRatioFilter",
    "LexiconDensityFilter",
    "LineRepetitionFilter",
    "MinLengthFilter",
    "MojibakeFilter",
    "SymbolRatioFilter",
]
