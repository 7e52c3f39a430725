"""From signatures to decisions: exact groups, candidate pairs, Jaccard check, keepers.

``resolve`` is the one place where decisions are made; the in-memory ``find_duplicates`` and
the staged ``NearDupClusters`` only differ in where the arrays and texts come from.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from curation.dedup.canonical import canonical, canonical_batch, exact_hash, jaccard, ngram_hashes
from curation.dedup.core import (
    Decision,
    DedupConfig,
    band_hashes,
    candidate_pairs,
    default_prefer,
    estimated_similarity,
    exact_groups,
    signatures,
    split_pairs,
)

Prefer = Callable[[Mapping], object]
BATCH = 2000  # documents per numpy pass: large enough to amortise, small enough for the cache


class LazyShingles(dict):
    """{doc index: n-gram hashes}, computed on first access from ``source(index)`` (canonical
    code points or text) and cached."""

    def __init__(self, source: Callable[[int], object], n: int):
        super().__init__()
        self.source, self.n = source, n

    def __missing__(self, i: int) -> np.ndarray:
        x = self.source(i)
        v = ngram_hashes(canonical(x) if isinstance(x, str) else x, self.n)
        self[i] = v
        return v


class CanonicalStore:
    """Canonical texts of all documents as one growing list of uint32 code-point chunks."""

    def __init__(self):
        self.chunks: list[np.ndarray] = []
        self._lens: list[np.ndarray] = []
        self._offs = None

    def add(self, cps: np.ndarray, lens: np.ndarray) -> None:
        self.chunks.append(cps)
        self._lens.append(lens)
        self._offs = None

    @property
    def lens(self) -> np.ndarray:
        if self._offs is None:
            self._lens = [np.concatenate(self._lens) if self._lens else np.zeros(0, np.int64)]
            self.chunks = [np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.uint32)]
            self._offs = np.concatenate([[0], np.cumsum(self._lens[0])])
        return self._lens[0]

    def get(self, i: int) -> np.ndarray:
        self.lens
        return self.chunks[0][self._offs[i] : self._offs[i + 1]]

    def exact_hashes(self) -> np.ndarray:
        n = len(self.lens)
        return np.fromiter((exact_hash(self.get(i)) for i in range(n)), dtype=np.uint64, count=n)


def preference_rank(rows: Sequence[Mapping], is_ref: np.ndarray, prefer: Prefer) -> np.ndarray:
    """rank[i] = position of doc i when visiting best first (reference docs first, by id)."""
    keys = [((0, str(r["id"])) if ref else (1, prefer(r))) for r, ref in zip(rows, is_ref)]
    order = sorted(range(len(rows)), key=keys.__getitem__)
    rank = np.empty(len(rows), dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(len(rows))
    return rank


def resolve(
    rows: Sequence[Mapping],
    exact: np.ndarray,
    is_ref: np.ndarray,
    pairs_for: Callable[[np.ndarray], Iterable[np.ndarray]],
    sig_rows: Callable[[np.ndarray], np.ndarray],
    shingles_for: Callable[[np.ndarray], Mapping[int, np.ndarray]],
    cfg: DedupConfig,
    prefer: Prefer = default_prefer,
    stats: dict | None = None,
) -> list[Decision]:
    """Decide which documents are duplicates.

    rows[i]       {"id", "length", "synthetic", ...} for doc i (what ``prefer`` sees)
    exact         uint64 exact hash per doc; is_ref: bool per doc (earlier published version)
    pairs_for     active mask -> iterable of candidate pair arrays (one per band or partition)
    sig_rows      doc indices -> their OPH signatures (for the estimate filter)
    shingles_for  doc indices -> mapping {doc index: sorted unique n-gram hashes}; may be lazy
    """
    stats = stats if stats is not None else {}
    n = len(rows)
    rank = preference_rank(rows, is_ref, prefer)
    exact_dup = exact_groups(exact, is_ref, rank) if n else {}
    active = np.ones(n, dtype=bool)
    if exact_dup:
        active[np.fromiter(exact_dup.keys(), dtype=np.int64)] = False

    # candidate pairs over active docs, at least one of them new
    chunks = []
    for p in pairs_for(active):
        if len(p):
            chunks.append(p)
    pairs = np.unique(np.concatenate(chunks)) if chunks else np.empty(0, dtype=np.uint64)
    a, b = split_pairs(pairs)
    keep = ~(is_ref[a] & is_ref[b])
    a, b = a[keep], b[keep]
    stats["candidate_pairs"] = int(len(a))

    # estimate filter, in chunks to bound memory
    sel = []
    for s in range(0, len(a), 200_000):
        aa, bb = a[s : s + 200_000], b[s : s + 200_000]
        est = estimated_similarity(sig_rows(aa), sig_rows(bb))
        sel.append(est >= cfg.threshold - cfg.est_margin)
    if sel:
        m = np.concatenate(sel)
        a, b = a[m], b[m]
    stats["checked_pairs"] = int(len(a))

    # greedy best-first clustering; the actual Jaccard of the character-shingle sets is
    # computed lazily, only against neighbours that are kept (a removed neighbour can never be
    # a duplicate_of), which in a cluster of m copies checks m-1 pairs instead of m(m-1)/2
    nbrs: dict[int, list[int]] = {}
    for i, j in zip(a.tolist(), b.tolist()):
        nbrs.setdefault(i, []).append(j)
        nbrs.setdefault(j, []).append(i)
    sh = shingles_for(np.unique(np.concatenate([a, b]))) if len(a) else {}
    order = sorted(nbrs, key=rank.__getitem__)
    kept = np.zeros(n, dtype=bool)
    near: dict[int, tuple[int, float]] = {}
    verified = 0
    for i in order:
        if is_ref[i]:
            kept[i] = True
            continue
        best = None
        for j in nbrs[i]:
            if kept[j]:
                s = jaccard(sh[i], sh[j])
                verified += 1
                if s >= cfg.threshold and (best is None or s > best[1]):
                    best = (j, s)
        if best is None:
            kept[i] = True
        else:
            near[i] = best
    stats["jaccard_checks"] = verified

    out = []
    for i, (k, s) in near.items():
        out.append(Decision(rows[i]["id"], rows[k]["id"], round(float(s), 4), "near"))
    for i, k in exact_dup.items():
        if k in near:  # the exact keeper itself went: point at the final keeper
            k2, s = near[k]
            out.append(Decision(rows[i]["id"], rows[k2]["id"], round(float(s), 4), "near"))
        else:
            out.append(Decision(rows[i]["id"], rows[k]["id"], 1.0, "exact"))
    stats["exact_removed"] = sum(1 for d in out if d.kind == "exact")
    stats["near_removed"] = len(out) - stats["exact_removed"]
    out.sort(key=lambda d: d.id)
    return out


def band_pairs(bands: np.ndarray, cfg: DedupConfig) -> Callable[[np.ndarray], Iterator[np.ndarray]]:
    """``pairs_for`` over an in-memory (n_docs, bands) array."""

    def gen(active: np.ndarray) -> Iterator[np.ndarray]:
        idx = np.flatnonzero(active)
        for bi in range(bands.shape[1]):
            yield candidate_pairs(bands[idx, bi], idx, cfg)

    return gen


def _split_doc(d) -> tuple[str, str, Mapping]:
    if isinstance(d, tuple) or isinstance(d, list):
        return (str(d[0]), d[1], d[2] if len(d) > 2 else {})
    return (str(d.id), d.text, d.metadata)  # a datatrove Document


def find_duplicates(
    docs: Iterable,
    reference: Iterable | None = None,
    *,
    prefer: Prefer = default_prefer,
    stats: dict | None = None,
    **params,
) -> list[Decision]:
    """In-memory dedup of ``docs`` ((id, text) or (id, text, metadata) tuples, or Documents)
    against each other and against ``reference`` ((id, text) of an earlier published version).

    ``params`` are ``DedupConfig`` fields (``threshold``, ``n``, ``bands``, ``rows`` ...).
    ``metadata["synthetic"]`` (bool) and ``metadata["source"]`` are passed to ``prefer``.
    Returns one ``Decision`` per removed document, sorted by id.
    """
    cfg = DedupConfig(**params)
    rows, texts, refs = [], [], []
    for is_r, it in ((False, docs), (True, reference or ())):
        for d in it:
            i, text, meta = _split_doc(d)
            texts.append(text)
            refs.append(is_r)
            rows.append({"id": i, "synthetic": bool(meta.get("synthetic", False)), "source": meta.get("source", "")})
    is_ref = np.asarray(refs, dtype=bool)
    canon = CanonicalStore()
    sigs = []
    for s in range(0, len(texts), BATCH):
        cps, lens = canonical_batch(texts[s : s + BATCH])
        canon.add(cps, lens)
        sigs.append(signatures(cps, lens, cfg))
    del texts
    for r, ln in zip(rows, canon.lens.tolist()):
        r["length"] = ln
    exact = canon.exact_hashes()
    sig = np.concatenate(sigs) if sigs else np.empty((0, cfg.num_bins), np.uint32)
    bands = band_hashes(sig, cfg)
    return resolve(
        rows,
        exact,
        is_ref,
        band_pairs(bands, cfg),
        lambda idx: sig[idx],
        lambda idx: LazyShingles(canon.get, cfg.n),
        cfg,
        prefer,
        stats,
    )
