"""From signatures to decisions: exact groups, candidate pairs, Jaccard check, keepers.

``resolve`` is the one place where decisions are made; the in-memory ``find_duplicates`` and
the staged ``NearDupClusters`` only differ in where the arrays and texts come from.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from curation.dedup.canonical import canonical, exact_hash, jaccard, ngram_hashes
from curation.dedup.core import (
    Decision,
    DedupConfig,
    assign,
    band_hashes,
    candidate_pairs,
    default_prefer,
    estimated_similarity,
    exact_groups,
    signatures,
    split_pairs,
)

Prefer = Callable[[Mapping], object]


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
    shingles_for  doc indices -> {doc index: sorted unique n-gram hashes} (reads the texts)
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

    # actual Jaccard of the character-shingle sets
    edges: dict[int, list[tuple[int, float]]] = {}
    if len(a):
        sh = shingles_for(np.unique(np.concatenate([a, b])))
        for i, j in zip(a.tolist(), b.tolist()):
            s = jaccard(sh[i], sh[j])
            if s >= cfg.threshold:
                edges.setdefault(i, []).append((j, s))
                edges.setdefault(j, []).append((i, s))
    stats["verified_pairs"] = sum(len(v) for v in edges.values()) // 2

    order = sorted(edges, key=rank.__getitem__)
    near = assign(order, is_ref, edges)

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
    rows, canons, refs = [], [], []
    for is_r, it in ((False, docs), (True, reference or ())):
        for d in it:
            i, text, meta = _split_doc(d)
            c = canonical(text)
            canons.append(c)
            refs.append(is_r)
            rows.append(
                {"id": i, "length": len(c), "synthetic": bool(meta.get("synthetic", False)), "source": meta.get("source", "")}
            )
    is_ref = np.asarray(refs, dtype=bool)
    exact = np.fromiter((exact_hash(c) for c in canons), dtype=np.uint64, count=len(canons))
    sig = signatures(canons, cfg)
    bands = band_hashes(sig, cfg)
    return resolve(
        rows,
        exact,
        is_ref,
        band_pairs(bands, cfg),
        lambda idx: sig[idx],
        lambda idx: {int(i): ngram_hashes(canons[i], cfg.n) for i in idx},
        cfg,
        prefer,
        stats,
    )
