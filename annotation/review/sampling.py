"""Which documents annotators see: seeded, reproducible sampling strategies.

- ``stratified``: by (source, category). Every stratum gets at least one slot (small sources are
  seen), the rest is split in proportion to stratum size (largest remainder).
- ``score_band``: equal slots per classifier-score band (deciles by default), so reviews cover
  the whole score range, not just the bulk.
- ``uncertainty``: documents whose classifier score is closest to the current threshold
  (active learning: these labels move the classifier most).

Every strategy takes the candidates as a pandas frame with ``id``, ``source``, ``category`` and,
for the score-based ones, ``score``; it returns ids in a stable order. Ties are broken by a
seeded hash of the id, so the same seed gives the same batch on any machine.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from cumed.errors import CumedError

STRATEGIES = ("stratified", "score_band", "uncertainty")


def _rank_key(ids: pd.Series, seed: int) -> pd.Series:
    return ids.map(lambda i: hashlib.sha1(f"{seed}:{i}".encode()).hexdigest())


def _take(frame: pd.DataFrame, k: int, seed: int) -> list[str]:
    return frame.assign(_k=_rank_key(frame["id"], seed)).sort_values("_k")["id"].head(k).tolist()


def stratified(frame: pd.DataFrame, n: int, seed: int = 0) -> list[str]:
    groups = {key: g for key, g in frame.groupby(["source", "category"], sort=True)}
    if not groups or n <= 0:
        return []
    sizes = {k: len(g) for k, g in groups.items()}
    alloc = {k: 0 for k in groups}
    # One each first (as far as n allows, smallest strata first so rare sources are never starved).
    for k in sorted(groups, key=lambda k: (sizes[k], k))[:n]:
        alloc[k] = 1
    rest = n - sum(alloc.values())
    if rest > 0:
        room = {k: sizes[k] - alloc[k] for k in groups}
        total = sum(room.values())
        if total:
            exact = {k: rest * room[k] / total for k in groups}
            for k in groups:
                alloc[k] += min(room[k], int(exact[k]))
            left = n - sum(alloc.values())
            for k in sorted(groups, key=lambda k: (-(exact[k] - int(exact[k])), k)):
                if left <= 0:
                    break
                if alloc[k] < sizes[k]:
                    alloc[k] += 1
                    left -= 1
    out = []
    for k in sorted(groups):
        out += _take(groups[k], alloc[k], seed)
    return out


def _need_scores(frame: pd.DataFrame, strategy: str) -> pd.DataFrame:
    if "score" not in frame or frame["score"].isna().all():
        raise CumedError(
            f"--strategy {strategy} needs classifier scores (metadata.quality_score) in the dataset; "
            f"apply a quality classifier first or use --strategy stratified"
        )
    return frame[frame["score"].notna()]


def score_band(frame: pd.DataFrame, n: int, seed: int = 0, bands: int = 10) -> list[str]:
    scored = _need_scores(frame, "score_band")
    band = np.minimum((scored["score"].clip(0, 1) * bands).astype(int), bands - 1)
    per = {b: g for b, g in scored.groupby(band)}
    quota = {b: n // len(per) + (1 if i < n % len(per) else 0) for i, b in enumerate(sorted(per))}
    out = []
    for b in sorted(per):
        out += _take(per[b], quota[b], seed)
    return out


def uncertainty(frame: pd.DataFrame, n: int, seed: int = 0, threshold: float = 0.5) -> list[str]:
    scored = _need_scores(frame, "uncertainty")
    ranked = scored.assign(_d=(scored["score"] - threshold).abs(), _k=_rank_key(scored["id"], seed))
    return ranked.sort_values(["_d", "_k"])["id"].head(n).tolist()


def sample(frame: pd.DataFrame, n: int, strategy: str = "stratified", seed: int = 0, **kwargs) -> list[str]:
    if strategy not in STRATEGIES:
        raise CumedError(f"unknown sampling strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    return {"stratified": stratified, "score_band": score_band, "uncertainty": uncertainty}[strategy](
        frame, n, seed=seed, **kwargs
    )
