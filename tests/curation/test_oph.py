"""Densified OPH signatures (``core.signatures``, compiled in ``curation.dedup.oph``) against their
definition written out in plain Python, window by window and bin by bin."""

from __future__ import annotations

import random

import numpy as np

from curation.dedup.canonical import canonical_batch
from curation.dedup.core import DedupConfig, _probe_table, signatures

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
EMPTY = 0xFFFFFFFF


def _mix(h: int) -> int:
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & M64
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & M64
    return h ^ (h >> 31)


def _plain_signature(cps: list[int], cfg: DedupConfig, probes: np.ndarray) -> list[int]:
    k, n = cfg.num_bins, cfg.n
    if 0 < len(cps) < n:
        cps = cps + [0] * (n - len(cps))  # a short text: one window, padded with U+0000
    row = [EMPTY] * k
    for s in range(len(cps) - n + 1):
        h = 0
        for c in cps[s : s + n]:
            h = (h * GOLDEN + c) & M64
        h = _mix(h)
        b = ((h >> 32) * k) >> 32
        row[b] = min(row[b], h & 0xFFFFFFFF)
    filled = [v != EMPTY for v in row]
    if not any(filled):
        return row
    low = min(v for v, f in zip(row, filled) if f)
    out = list(row)
    for j in range(k):
        if not filled[j]:
            src = next((int(p) for p in probes[:, j] if filled[int(p)]), None)
            out[j] = row[src] if src is not None else low
    return out


def test_signatures_are_the_plain_definition():
    """Texts of every kind the densification meets: long (few empty bins), short (most bins empty:
    many probes, some rows reach the fallback with few tries), shorter than n, empty."""
    rng = random.Random(7)
    alphabet = [chr(0x4E00 + i) for i in range(40)]
    texts = ["", "甲", "甲乙丙丁", "甲乙丙丁戊", "高血压患者应该怎么办，需要吃什么药？" * 3]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400))) for _ in range(300)]
    cps, lens = canonical_batch(texts)
    for cfg in (DedupConfig(), DedupConfig(densify_tries=2)):  # 2 tries: the fallback is taken
        probes = _probe_table(cfg)
        got = signatures(cps, lens, cfg)
        assert got.dtype == np.uint32 and got.shape == (len(texts), cfg.num_bins)
        ends = np.cumsum(lens)
        for t, (s, e) in enumerate(zip((ends - lens).tolist(), ends.tolist())):
            assert got[t].tolist() == _plain_signature(cps[s:e].tolist(), cfg, probes), (cfg.densify_tries, t)
        assert (got[0] == EMPTY).all() and not (got[1:] == EMPTY).any()
