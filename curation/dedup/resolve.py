"""From signatures to decisions: exact groups, candidate pairs, Jaccard check, keepers.

``resolve`` is the one place where decisions are made; the in-memory ``find_duplicates`` and
the staged ``NearDupClusters`` only differ in where the arrays and canonical texts come from.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.dedup.canonical import ShingleBatch, canonical_batch, exact_hashes, shingle_batch
from curation.dedup.core import (
    Decision,
    DedupConfig,
    assemble_decisions,
    band_hashes,
    candidate_pairs,
    default_prefer,
    estimated_similarity,
    exact_groups,
    signatures,
    sketch,
    split_pairs,
    verify_options,
    verify_pairs,
)

Prefer = Callable[[Mapping], object]
BATCH = 2000  # documents per numpy pass: large enough to amortise, small enough for the cache
META_SCHEMA = pa.schema([("id", pa.string()), ("length", pa.int64()), ("synthetic", pa.bool_()), ("source", pa.string())])


def shingle_sets(idx: np.ndarray, codepoints_of: Callable[[int], np.ndarray], n: int) -> ShingleBatch:
    """The n-grams of the documents ``idx`` (text k = ``idx[k]``), hashed in batches."""
    out = []
    keys = [int(i) for i in idx]
    for s in range(0, len(keys), BATCH):
        texts = [codepoints_of(k) for k in keys[s : s + BATCH]]
        out.append(shingle_batch(np.concatenate(texts), np.fromiter(map(len, texts), np.int64, len(texts)), n))
    return ShingleBatch.concat(out) if out else ShingleBatch.of([])


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
        # the batch hash of the signature writer (``canonical.exact_hashes``), not one call per text
        lens = self.lens
        return exact_hashes(self.chunks[0], lens)


def preference_rank(meta: pa.Table, is_ref: np.ndarray, prefer: Prefer) -> np.ndarray:
    """rank[i] = position of doc i when visiting best first (reference docs first, by id).

    ``meta``: one row per doc (``META_SCHEMA``). ``default_prefer`` is computed as one Arrow
    sort; any other ``prefer`` is called on each row as a dict."""
    n = meta.num_rows
    if prefer is default_prefer:
        ref = pa.array(is_ref)
        keys = pa.table({
            "group": pc.if_else(ref, 0, 1),
            "synthetic": pc.if_else(ref, False, meta.column("synthetic").fill_null(False)),
            "neg_length": pc.if_else(ref, 0, pc.negate(meta.column("length"))),
            "id": meta.column("id"),  # UTF-8 byte order = code point order = Python's str order
        })
        order = pc.sort_indices(keys, sort_keys=[(c, "ascending") for c in keys.column_names]).to_numpy()
    else:
        rows = meta.to_pylist()
        keys = [((0, str(r["id"])) if ref else (1, prefer(r))) for r, ref in zip(rows, is_ref)]
        order = np.asarray(sorted(range(n), key=keys.__getitem__), dtype=np.int64)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return rank


def resolve(
    meta: pa.Table,
    exact: np.ndarray,
    is_ref: np.ndarray,
    pairs_for: Callable[[np.ndarray], Iterable[np.ndarray]],
    sketch_rows: Callable[[np.ndarray], np.ndarray],
    codepoints_of: Callable[[int], np.ndarray],
    cfg: DedupConfig,
    prefer: Prefer = default_prefer,
    stats: dict | None = None,
) -> list[Decision]:
    """Decide which documents are duplicates.

    meta           one row per doc: id, length (canonical chars), synthetic, source (``META_SCHEMA``;
                   what ``prefer`` sees)
    exact          uint64 exact hash per doc; is_ref: bool per doc (earlier published version)
    pairs_for      active mask -> iterable of candidate pair arrays (one per band or partition)
    sketch_rows    doc indices -> their signature sketches (``core.sketch``, for the estimate filter)
    codepoints_of  doc index -> its canonical code points (read only for candidate documents)
    """
    stats = stats if stats is not None else {}
    n = meta.num_rows
    ids = meta.column("id").to_pylist()
    rank = preference_rank(meta, is_ref, prefer)
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
        est = estimated_similarity(sketch_rows(aa), sketch_rows(bb))
        sel.append(est >= cfg.estimate_floor)
    if sel:
        m = np.concatenate(sel)
        a, b = a[m], b[m]
    stats["checked_pairs"] = int(len(a))

    # every pair verified at once (``core.verify_pairs``: the actual Jaccard, and under
    # ``verify="coverage"`` the covered shares and own passages): ~20x cheaper per pair than one
    # ``verify_pair`` call each, so it pays even though the greedy best-first clustering only
    # reads the pairs against kept neighbours (a removed neighbour can never be a duplicate_of;
    # 3,477 of 4,646 on cumed-pretrain, 24,952 of 25,249 on 250k short QA). ``jaccard_checks``
    # still counts those: which verifications the decisions rest on
    nodes = np.unique(np.concatenate([a, b]))
    sh = shingle_sets(nodes, codepoints_of, cfg.n)
    sim, dup = verify_pairs(sh, np.searchsorted(nodes, a), np.searchsorted(nodes, b), cfg)
    nbrs: dict[int, list[tuple[int, float, bool]]] = {}
    for i, j, s, d in zip(a.tolist(), b.tolist(), sim.tolist(), dup.tolist()):
        nbrs.setdefault(i, []).append((j, s, d))
        nbrs.setdefault(j, []).append((i, s, d))
    order = sorted(nbrs, key=rank.__getitem__)
    kept = np.zeros(n, dtype=bool)
    near: dict[int, tuple[int, float]] = {}
    verified = 0
    for i in order:
        if is_ref[i]:
            kept[i] = True
            continue
        best = None
        for j, s, d in nbrs[i]:
            if kept[j]:
                verified += 1
                if d and (best is None or s > best[1]):
                    best = (j, s)
        if best is None:
            kept[i] = True
        else:
            near[i] = best
    stats["jaccard_checks"] = verified

    out = assemble_decisions(near, exact_dup.items(), ids)
    stats["exact_removed"] = sum(1 for d in out if d.kind == "exact")
    stats["near_removed"] = len(out) - stats["exact_removed"]
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

    ``params`` are ``DedupConfig`` fields (``threshold``, ``n``, ``bands``, ``rows``, ``verify`` ...;
    ``verify`` may also be a recipe's mapping ``{rule: ..., cover_one: ...}``, ``verify_options``).
    ``metadata["synthetic"]`` (bool) and ``metadata["source"]`` are passed to ``prefer``.
    Returns one ``Decision`` per removed document, sorted by id.
    """
    if isinstance(params.get("verify"), Mapping):
        params = {**params, **verify_options(params["verify"])}
    cfg = DedupConfig(**params)
    ids, synthetic, sources, texts, refs = [], [], [], [], []
    for is_r, it in ((False, docs), (True, reference or ())):
        for d in it:
            i, text, meta = _split_doc(d)
            ids.append(i)
            texts.append(text)
            refs.append(is_r)
            synthetic.append(bool(meta.get("synthetic", False)))
            sources.append(str(meta.get("source", "")))
    is_ref = np.asarray(refs, dtype=bool)
    canon = CanonicalStore()
    sigs = []
    for s in range(0, len(texts), BATCH):
        cps, lens = canonical_batch(texts[s : s + BATCH])
        canon.add(cps, lens)
        sigs.append(signatures(cps, lens, cfg))
    del texts
    meta = pa.table([ids, canon.lens, synthetic, sources], schema=META_SCHEMA)
    exact = canon.exact_hashes()
    sig = np.concatenate(sigs) if sigs else np.empty((0, cfg.num_bins), np.uint32)
    bands = band_hashes(sig, cfg)
    sk = sketch(sig)
    del sig
    return resolve(
        meta,
        exact,
        is_ref,
        band_pairs(bands, cfg),
        lambda idx: sk[idx],
        canon.get,
        cfg,
        prefer,
        stats,
    )
