"""Which documents a model scores: stratified by (source, category), seeded.

``--per-source N`` takes up to N documents of every (source, category) stratum, so a small source
is graded as often as a large one (labels for the rare kinds of text are what a classifier lacks);
``--n N`` alone splits N over the strata in proportion to their size with at least one each (the
review queue's ``stratified``); both: the per-stratum sample, then N of it by the same rule.
Within a stratum the order is a seeded hash of the id, so the same seed gives the same sample on
any machine and a larger N only adds documents.
"""

from __future__ import annotations

import pandas as pd

from cumed.errors import CumedError

from annotation.review.sampling import _rank_key, stratified


def stratified_sample(frame: pd.DataFrame, n: int | None = None, per_stratum: int | None = None,
                      seed: int = 0) -> list[str]:
    """Ids of ``frame`` (columns ``id``, ``source``, ``category``), in (stratum, seeded) order."""
    if n is not None and n < 1:
        raise CumedError(f"--n {n}: score at least 1 document")
    if per_stratum is not None and per_stratum < 1:
        raise CumedError(f"--per-source {per_stratum}: take at least 1 document per source")
    if per_stratum is not None:
        frame = (frame.assign(_k=_rank_key(frame["id"], seed)).sort_values(["source", "category", "_k"])
                 .groupby(["source", "category"], sort=True).head(per_stratum).drop(columns="_k"))
    if n is None:
        return frame.assign(_k=_rank_key(frame["id"], seed)).sort_values(["source", "category", "_k"])["id"].tolist()
    return stratified(frame, n, seed=seed)


def strata(frame: pd.DataFrame, ids: list[str]) -> dict[str, int]:
    """``{"source/category": documents}`` of a sample, for the report."""
    picked = frame[frame["id"].isin(set(ids))]
    return {f"{s}/{c}": int(k) for (s, c), k in picked.groupby(["source", "category"], sort=True).size().items()}
