"""Staged near-duplicate removal for corpora larger than memory (datatrove-style, three steps).

Stage 1, ``NearDupSignatures`` (parallel, inside the main pipeline): passes documents through
unchanged and writes, per rank (= shard), to ``output_folder``:

    {rank:05d}.sig.npy              (n, bins) uint32 OPH signatures
    bands/{band:02d}/{rank:05d}.npy (n, 2) uint64 [band hash, local index], sorted by hash
    {rank:05d}.meta.parquet         id, length (canonical chars), exact (uint64), synthetic, source

The meta file is renamed into place last, so a rank counts only once it is complete: a crash
loses that one shard, and datatrove's executor re-runs just the unfinished ranks.

Stage 2, ``NearDupClusters`` (one task): per band and per hash-range partition, slices the
sorted band files of all ranks (memory-mapped, ``np.searchsorted``), finds candidate pairs,
filters them by signature estimate, reads back only the candidates' texts from ``texts_folder``
(Parquet with ``id`` and ``text``) and checks their actual Jaccard, then picks keepers and
writes ``decisions.parquet``: id, duplicate_of, similarity, kind (``exact`` | ``near``).
Memory: one partition of one band (16 bytes per document / ``partitions``), the meta table
(ids, ~60 bytes per document), the signatures of the candidate pairs, and the texts of the
candidate documents only. Not the corpus.

Stage 3, ``DuplicateFilter`` (parallel, on Documents) or ``ApplyDuplicateDecisions`` (parallel, on
the Parquet tables of stage 1 directly, what ``cumed build`` uses): removes the documents named in
the decisions.

Only local folders are supported for the signature files (they are memory-mapped).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.batching import batched

from curation.dedup.canonical import canonical_batch, exact_hash
from curation.dedup.core import (
    Decision,
    DedupConfig,
    band_hashes,
    candidate_pairs,
    default_prefer,
    signatures,
)
from curation.dedup.resolve import LazyShingles, Prefer, resolve

DECISIONS_FILE = "decisions.parquet"


def _is_synthetic_default(doc: Document) -> bool:
    return bool(doc.metadata.get("synthetic", False))


class _RankWriter:
    """Buffers one rank's signatures and writes the three files at the end, meta last."""

    def __init__(self, folder: str, rank: int, cfg: DedupConfig):
        self.folder, self.rank, self.cfg = Path(folder), rank, cfg
        self.meta = {"id": [], "length": [], "exact": [], "synthetic": [], "source": []}
        self.sigs: list[np.ndarray] = []
        self.bands: list[np.ndarray] = []

    def add(self, ids, texts, synthetic, sources):
        cps, lens = canonical_batch(list(texts))
        sig = signatures(cps, lens, self.cfg)
        self.sigs.append(sig)
        self.bands.append(band_hashes(sig, self.cfg))
        offs = np.concatenate([[0], np.cumsum(lens)])
        self.meta["id"] += [str(i) for i in ids]
        self.meta["length"] += lens.tolist()
        self.meta["exact"] += [exact_hash(cps[offs[j] : offs[j + 1]]) for j in range(len(lens))]
        self.meta["synthetic"] += list(synthetic)
        self.meta["source"] += list(sources)

    def close(self):
        k, b = self.cfg.num_bins, self.cfg.bands
        sig = np.concatenate(self.sigs) if self.sigs else np.empty((0, k), np.uint32)
        bands = np.concatenate(self.bands) if self.bands else np.empty((0, b), np.uint64)
        self.folder.mkdir(parents=True, exist_ok=True)
        tag = f"{self.rank:05d}"
        _save_atomic(self.folder / f"{tag}.sig.npy", sig)
        local = np.arange(len(bands), dtype=np.uint64)
        for bi in range(b):
            order = np.argsort(bands[:, bi], kind="stable")
            arr = np.stack([bands[order, bi], local[order]], axis=1)
            d = self.folder / "bands" / f"{bi:02d}"
            d.mkdir(parents=True, exist_ok=True)
            _save_atomic(d / f"{tag}.npy", arr)
        table = pa.table(
            {
                "id": pa.array(self.meta["id"], pa.string()),
                "length": pa.array(self.meta["length"], pa.int64()),
                "exact": pa.array(self.meta["exact"], pa.uint64()),
                "synthetic": pa.array(self.meta["synthetic"], pa.bool_()),
                "source": pa.array(self.meta["source"], pa.string()),
            }
        )
        tmp = self.folder / f".{tag}.meta.parquet.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, self.folder / f"{tag}.meta.parquet")
        (self.folder / "config.json").write_text(json.dumps(self.cfg.__dict__))


def _save_atomic(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, arr)
    os.replace(tmp, path)


class NearDupSignatures(PipelineStep):
    """Stage 1: write per-rank OPH signatures, sorted LSH band files and doc meta; pass docs on.

    ``is_synthetic(doc)`` feeds the "best member" choice (default: ``metadata["synthetic"]``);
    documents from ``synthetic_sources`` (recipe source names) count as synthetic too.
    """

    name = "🫂 near-dup signatures"
    type = "🫂 - DEDUP"

    def __init__(
        self,
        output_folder: str,
        n: int = 5,
        bands: int = 28,
        rows: int = 4,
        seed: int = 1,
        batch_size: int = 2000,
        synthetic_sources: Iterable[str] = (),
        is_synthetic: Callable[[Document], bool] = _is_synthetic_default,
    ):
        super().__init__()
        self.output_folder = str(output_folder)
        self.cfg = DedupConfig(n=n, bands=bands, rows=rows, seed=seed)
        self.batch_size = batch_size
        self.synthetic_sources = set(synthetic_sources)
        self.is_synthetic = is_synthetic

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        w = _RankWriter(self.output_folder, rank, self.cfg)
        for batch in batched(data, self.batch_size):
            with self.track_time("batch"):
                w.add(
                    [d.id for d in batch],
                    [d.text for d in batch],
                    [self.is_synthetic(d) or d.metadata.get("source") in self.synthetic_sources for d in batch],
                    [str(d.metadata.get("source", "")) for d in batch],
                )
            self.stat_update("signed", value=len(batch))
            yield from batch
        w.close()


def _iter_parquet_texts(folder: str, wanted: set[str], id_key="id", text_key="text"):
    files = sorted(Path(folder).rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files under {folder}; stage 1's ParquetWriter output folder expected")
    want = pa.array(sorted(wanted), pa.string())
    for f in files:
        pf = pq.ParquetFile(f)
        for batch in pf.iter_batches(columns=[id_key, text_key], batch_size=10_000):
            ids = batch.column(0).cast(pa.string())
            mask = pc.is_in(ids, value_set=want)
            if not pc.any(mask).as_py():
                continue
            sub = batch.filter(mask)
            yield from zip(sub.column(0).to_pylist(), sub.column(1).to_pylist())


def _canonical_cps(texts: dict[int, str], batch: int = 2000) -> dict[int, np.ndarray]:
    """{doc index: canonical code points}, canonicalised in batches (``canonical_batch`` gives
    the same code points as ``canonical`` per text, ~10x faster); consumes ``texts``."""
    out: dict[int, np.ndarray] = {}
    keys = list(texts)
    for s in range(0, len(keys), batch):
        ks = keys[s : s + batch]
        cps, lens = canonical_batch([texts.pop(k) for k in ks])
        offs = np.concatenate([[0], np.cumsum(lens)])
        for j, k in enumerate(ks):
            out[k] = cps[offs[j] : offs[j + 1]]
    return out


def _texts(source, wanted: set[str]):
    if callable(source):
        return ((str(i), t) for i, t in source(wanted) if str(i) in wanted)
    return _iter_parquet_texts(str(source), wanted)


class _SignatureStore:
    """Global view over the rank files of one or more signature folders (index = row order)."""

    def __init__(self, folders: list[tuple[str, bool]], cfg: DedupConfig):
        self.cfg = cfg
        self.parts = []  # (folder, tag, offset, n, is_ref)
        metas = []
        off = 0
        for folder, is_ref in folders:
            for mf in sorted(Path(folder).glob("*.meta.parquet")):
                tag = mf.name.split(".")[0]
                t = pq.read_table(mf)
                self.parts.append((Path(folder), tag, off, t.num_rows, is_ref))
                metas.append((t, is_ref))
                off += t.num_rows
        self.n = off
        self.offsets = np.array([p[2] for p in self.parts] + [off], dtype=np.int64)
        self.is_ref = np.concatenate([np.full(t.num_rows, r, bool) for t, r in metas]) if metas else np.zeros(0, bool)
        self.ids = [i for t, _ in metas for i in t.column("id").to_pylist()]
        self.exact = (
            np.concatenate([t.column("exact").to_numpy() for t, _ in metas]).astype(np.uint64)
            if metas
            else np.zeros(0, np.uint64)
        )
        self.rows = []
        for t, _ in metas:
            self.rows += t.select(["id", "length", "synthetic", "source"]).to_pylist()
        self._sig = [np.load(p[0] / f"{p[1]}.sig.npy", mmap_mode="r") for p in self.parts]

    def sig_rows(self, idx: np.ndarray) -> np.ndarray:
        # gather in file order (sorted, unique): sequential reads of the memory-mapped rows
        uniq, inv = np.unique(idx, return_inverse=True)
        got = np.empty((len(uniq), self.cfg.num_bins), np.uint32)
        bounds = np.searchsorted(uniq, self.offsets)
        for p in range(len(self.parts)):
            lo, hi = bounds[p], bounds[p + 1]
            if hi > lo:
                got[lo:hi] = self._sig[p][uniq[lo:hi] - self.offsets[p]]
        return got[inv]

    def pairs_for(self, partitions: int):
        def gen(active: np.ndarray):
            cuts = [np.uint64(min((2**64 * q) // partitions, 2**64 - 1)) for q in range(partitions + 1)]
            for bi in range(self.cfg.bands):
                mms = [np.load(p[0] / "bands" / f"{bi:02d}" / f"{p[1]}.npy", mmap_mode="r") for p in self.parts]
                for q in range(partitions):
                    hs, ds = [], []
                    for p, mm in zip(self.parts, mms):
                        col = mm[:, 0]
                        lo = np.searchsorted(col, cuts[q], side="left") if q else 0
                        hi = np.searchsorted(col, cuts[q + 1], side="left") if q + 1 < partitions else len(col)
                        sl = np.asarray(mm[lo:hi])
                        g = sl[:, 1].astype(np.int64) + p[2]
                        keep = active[g]
                        hs.append(sl[keep, 0])
                        ds.append(g[keep])
                    if hs:
                        yield candidate_pairs(np.concatenate(hs), np.concatenate(ds), self.cfg)

        return gen


class NearDupClusters(PipelineStep):
    """Stage 2: candidate pairs -> actual Jaccard -> keepers -> ``decisions.parquet``.

    ``texts_folder`` (and ``reference_folder``) hold Parquet files with ``id`` and ``text``;
    either may also be a callable ``wanted_ids -> iterable of (id, text)``. Reference documents
    (an earlier published version) are always kept; a new document duplicating one is removed
    with ``duplicate_of`` = the reference document's own id.
    Run with ``LocalPipelineExecutor(pipeline=[NearDupClusters(...)], tasks=1)``.
    """

    name = "🫂 near-dup clusters"
    type = "🫂 - DEDUP"

    def __init__(
        self,
        signatures_folder: str,
        texts_folder,
        output_folder: str,
        reference_folder=None,
        threshold: float = 0.75,
        est_margin: float = 0.15,
        max_bucket: int = 32,
        partitions: int = 1,
        prefer: Prefer = default_prefer,
    ):
        super().__init__()
        self.signatures_folder = str(signatures_folder)
        self.texts_folder = texts_folder
        self.output_folder = str(output_folder)
        self.reference_folder = reference_folder
        self.threshold, self.est_margin, self.max_bucket = threshold, est_margin, max_bucket
        self.partitions = partitions
        self.prefer = prefer

    def _config(self) -> DedupConfig:
        p = Path(self.signatures_folder) / "config.json"
        base = json.loads(p.read_text()) if p.exists() else {}
        base.update(threshold=self.threshold, est_margin=self.est_margin, max_bucket=self.max_bucket)
        return DedupConfig(**base)

    def _sign_reference(self, cfg: DedupConfig) -> str:
        folder = Path(self.output_folder) / "reference_signatures"
        w = _RankWriter(str(folder), 0, cfg)
        ref = self.reference_folder
        if callable(ref):
            it = ref(None)
        else:
            it = (
                (i, t)
                for f in sorted(Path(ref).rglob("*.parquet"))
                for b in pq.ParquetFile(f).iter_batches(columns=["id", "text"], batch_size=10_000)
                for i, t in zip(b.column(0).to_pylist(), b.column(1).to_pylist())
            )
        for chunk in batched(it, 5000):
            w.add([c[0] for c in chunk], [c[1] for c in chunk], [False] * len(chunk), ["reference"] * len(chunk))
        w.close()
        return str(folder)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        cfg = self._config()
        folders = [(self.signatures_folder, False)]
        if self.reference_folder is not None:
            folders.append((self._sign_reference(cfg), True))
        store = _SignatureStore(folders, cfg)
        stats: dict = {"documents": store.n}

        def shingles_for(idx: np.ndarray):
            texts: dict[int, str] = {}
            for is_ref, source in ((False, self.texts_folder), (True, self.reference_folder)):
                sel = idx[store.is_ref[idx] == is_ref]
                if not len(sel):
                    continue
                by_id = {store.ids[i]: int(i) for i in sel}
                for i, t in _texts(source, set(by_id)):
                    if i in by_id:
                        texts.setdefault(by_id[i], t)
            missing = [store.ids[i] for i in idx if int(i) not in texts]
            if missing:
                raise KeyError(f"{len(missing)} candidate texts not found (e.g. {missing[:3]}); texts_folder must hold every signed document")
            return LazyShingles(_canonical_cps(texts).pop, cfg.n)

        with self.track_time():
            decisions = resolve(
                store.rows,
                store.exact,
                store.is_ref,
                store.pairs_for(self.partitions),
                store.sig_rows,
                shingles_for,
                cfg,
                self.prefer,
                stats,
            )
        write_decisions(decisions, self.output_folder)
        (Path(self.output_folder) / "stats.json").write_text(json.dumps(stats, indent=1))
        for k, v in stats.items():
            self.stat_update(k, value=v)


def write_decisions(decisions: list[Decision], folder: str) -> None:
    Path(folder).mkdir(parents=True, exist_ok=True)
    t = pa.table(
        {
            "id": pa.array([d.id for d in decisions], pa.string()),
            "duplicate_of": pa.array([d.duplicate_of for d in decisions], pa.string()),
            "similarity": pa.array([d.similarity for d in decisions], pa.float64()),
            "kind": pa.array([d.kind for d in decisions], pa.string()),
        }
    )
    tmp = Path(folder) / f".{DECISIONS_FILE}.tmp"
    pq.write_table(t, tmp)
    os.replace(tmp, Path(folder) / DECISIONS_FILE)


def read_decisions(folder: str) -> list[Decision]:
    files = sorted(Path(folder).rglob(DECISIONS_FILE))
    if not files:
        raise FileNotFoundError(f"no {DECISIONS_FILE} under {folder}; run NearDupClusters first")
    out = []
    for f in files:
        for r in pq.read_table(f).to_pylist():
            out.append(Decision(r["id"], r["duplicate_of"], r["similarity"], r["kind"]))
    return out
