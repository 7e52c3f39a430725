"""Exact and near-duplicate removal over character n-grams of a canonical form (see near.py).

In memory: ``find_duplicates(docs, reference=None, **params) -> list[Decision]``.
Staged (datatrove): ``NearDupSignatures`` -> ``NearDupClusters`` -> ``DuplicateFilter`` (Documents)
or ``ApplyDuplicateDecisions`` (Parquet tables, as ``cumed build`` runs it).
"""

from curation.dedup.canonical import canonical
from curation.dedup.core import Decision, DedupConfig, default_prefer
from curation.dedup.filter import ApplyDuplicateDecisions, DuplicateFilter
from curation.dedup.near import NearDupClusters, NearDupSignatures, read_decisions, write_decisions
from curation.dedup.resolve import find_duplicates

__all__ = [
    "ApplyDuplicateDecisions",
    "Decision",
    "DedupConfig",
    "DuplicateFilter",
    "NearDupClusters",
    "NearDupSignatures",
    "canonical",
    "default_prefer",
    "find_duplicates",
    "read_decisions",
    "write_decisions",
]
