"""Staged near-duplicate removal for corpora larger than memory (datatrove-style, three steps).

Stage 1, ``NearDupSignatures`` (parallel, inside the main pipeline): passes documents through
unchanged and writes, per rank (= shard), to ``output_folder``:

    {rank:05d}.sketch.npy           (n, bins) uint8 low bytes of the OPH signatures (``core.sketch``)
    bands/{band:02d}/{rank:05d}.npy (n, 2) uint64 [band hash, local index], sorted by hash
    bands/{band:02d}/{rank:05d}.fence.npy  every ``BAND_FENCE``-th hash of it (ranged reads)
    {rank:05d}.canon.u16            canonical texts, UTF-16LE, concatenated (2 bytes per character)
    {rank:05d}.meta.parquet         id, length (canonical chars), exact (uint64), synthetic, source,
                                    canon_end (end of the document in the .canon.u16 file, in units)

The canonical texts are streamed to disk batch by batch; the meta file is renamed into place
last, so a rank counts only once it is complete: a crash loses that one shard, and datatrove's
executor re-runs just the unfinished ranks.

Stage 2, ``NearDupClusters`` (one task): per band and per hash-range partition, slices the
sorted band files of all ranks (memory-mapped, ``np.searchsorted``), finds candidate pairs,
filters them by the sketch estimate, reads the canonical texts of the remaining candidates
(memory-mapped slices: nothing is re-read from the corpus or canonicalised again), verifies them
(``core.verify_pair``: the ``verify`` rule, by default covered shares and the actual Jaccard), then picks keepers and writes ``decisions.parquet``: id, duplicate_of,
similarity, kind (``exact`` | ``near``).
Memory: one partition of one band (16 bytes per document / ``partitions``), the meta table
(ids, ~60 bytes per document), the sketches (112 bytes per document), and the n-gram sets of
the candidate documents only. Not the corpus.

Stage 3, ``DuplicateFilter`` (parallel, on Documents) or ``ApplyDuplicateDecisions`` (parallel, on
the Parquet tables of stage 1 directly, what ``cumed build`` uses): removes the documents named in
the decisions.

Stage 1 writes to a local folder in place, or, for a folder on object storage (any fsspec URL:
``cumed build --work s3://...``), to the task's private scratch folder and uploads the rank's
files when it is done (meta last). ``NearDupClusters`` memory-maps the files: local folders only;
``cumed build`` runs stage 2 as ``curation.dedup.buckets``, whose tasks read either. The
decisions are written and read through the same folder URLs (``curation.workfolder``).
"""

from __future__ import annotations

import json
import mmap
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.batching import batched

from cumed.atomic import replacing
from curation.dedup.canonical import canonical_batch, concat_arrays, exact_hashes
from curation.dedup.core import (
    Decision,
    DedupConfig,
    band_hashes,
    candidate_pairs,
    default_prefer,
    signatures,
    sketch,
    verify_options,
)
from curation.dedup.resolve import META_SCHEMA, Prefer, resolve
from curation.batch import BATCHES, CHUNKS, emit, in_chunks, peek_stream
from curation.workfolder import exists, folder, join, names, parquet_batches, read_parquet, read_text, staged, write_parquet

DECISIONS_FILE = "decisions.parquet"


# Bumped when the files of stage 1 change; part of ``cumed build``'s work-folder key, so a
# resumed build never mixes signature folders of two formats.
SIGNATURE_FORMAT = 2
# Every BAND_FENCE-th hash of a sorted band file is written beside it (``{tag}.fence.npy``,
# 8 bytes per 4,096 documents): a stage-B task on object storage finds the rows of its hash range
# from it and reads only those (``buckets.SignatureFiles.band_slices``). Part of the signature
# format: a change of it needs a new SIGNATURE_FORMAT.
BAND_FENCE = 4096


def _is_synthetic_default(doc: Document) -> bool:
    return bool(doc.metadata.get("synthetic", False))


def _utf16(cps: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Code points -> (UTF-16LE units, units per text). BMP-only batches (the usual case) are a
    plain cast; astral characters take two units each."""
    if not len(cps) or cps.max() < 0x10000:
        return cps.astype(np.uint16), lens
    units = np.frombuffer(cps.tobytes().decode("utf-32-le").encode("utf-16-le"), dtype=np.uint16)
    astral = np.flatnonzero(cps > 0xFFFF)
    bounds = np.concatenate([[0], np.cumsum(lens)])
    return units, lens + np.diff(np.searchsorted(astral, bounds))


def _map_u16(path: Path) -> np.ndarray:
    """The file as a read-only uint16 array backed by mmap (a plain ndarray: slicing it is
    cheaper than slicing an np.memmap, which stage 2 does once per candidate document)."""
    size = path.stat().st_size
    if not size:
        return np.zeros(0, np.uint16)
    with open(path, "rb") as f:
        return np.frombuffer(mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ), dtype=np.uint16)


def _codepoints(units: np.ndarray) -> np.ndarray:
    if ((units >= 0xD800) & (units < 0xE000)).any():
        return np.frombuffer(units.tobytes().decode("utf-16-le").encode("utf-32-le"), dtype=np.uint32)
    return units.astype(np.uint32)


class _RankWriter:
    """One rank's stage-1 files: canonical texts streamed to disk, sketches and band hashes
    buffered and written sorted at the end, meta last."""

    def __init__(self, folder: str, rank: int, cfg: DedupConfig):
        self.folder, self.rank, self.cfg = Path(folder), rank, cfg
        self.tag = f"{rank:05d}"
        # one chunk per batch: numpy arrays for the numbers (no Python int per document), lists
        # of str for the strings
        self.meta: dict[str, list] = {c: [] for c in ("id", "length", "exact", "synthetic", "source", "canon_end")}
        self.sketches: list[np.ndarray] = []
        self.bands: list[np.ndarray] = []  # (bands, batch) each: a band's hashes contiguous for ``close``
        self.folder.mkdir(parents=True, exist_ok=True)
        # Not ``cumed.atomic.replacing``: this buffer is appended to batch by batch for the whole
        # life of the rank and renamed in ``close``; a context manager cannot span those calls.
        self._canon_tmp = self.folder / f".{self.tag}.canon.u16.{os.getpid()}.tmp"
        self._canon = open(self._canon_tmp, "wb")
        self._units = 0

    def add(self, ids, texts, synthetic, sources):
        cps, lens = canonical_batch(list(texts))
        sig = signatures(cps, lens, self.cfg)
        self.sketches.append(sketch(sig))
        self.bands.append(np.ascontiguousarray(band_hashes(sig, self.cfg).T))
        units, unit_lens = _utf16(cps, lens)
        self._canon.write(units)  # the array's buffer as is, no bytes copy
        m = self.meta
        m["canon_end"].append(self._units + np.cumsum(unit_lens))
        self._units += int(unit_lens.sum())
        m["id"].append([str(i) for i in ids])
        m["length"].append(lens)
        m["exact"].append(exact_hashes(cps, lens))
        m["synthetic"].append(np.asarray(synthetic, dtype=bool))
        m["source"].append(list(sources))

    def close(self):
        b = self.cfg.bands
        sk = np.concatenate(self.sketches) if self.sketches else np.empty((0, self.cfg.num_bins), np.uint8)
        bands = np.concatenate(self.bands, axis=1) if self.bands else np.empty((b, 0), np.uint64)
        tag = self.tag
        self._canon.close()
        os.replace(self._canon_tmp, self.folder / f"{tag}.canon.u16")
        _save_atomic(self.folder / f"{tag}.sketch.npy", sk)
        for bi in range(b):
            order, hs = _hash_order(bands[bi])
            arr = np.empty((len(order), 2), np.uint64)
            arr[:, 0], arr[:, 1] = hs, order
            d = self.folder / "bands" / f"{bi:02d}"
            d.mkdir(parents=True, exist_ok=True)
            _save_atomic(d / f"{tag}.npy", arr)
            _save_atomic(d / f"{tag}.fence.npy", np.ascontiguousarray(hs[::BAND_FENCE]))
        m = self.meta
        table = pa.table(
            {
                "id": pa.array([x for c in m["id"] for x in c], pa.string()),
                "length": pa.array(concat_arrays(m["length"], np.int64), pa.int64()),
                "exact": pa.array(concat_arrays(m["exact"], np.uint64), pa.uint64()),
                "synthetic": pa.array(concat_arrays(m["synthetic"], bool), pa.bool_()),
                "source": pa.array([x for c in m["source"] for x in c], pa.string()),
                "canon_end": pa.array(concat_arrays(m["canon_end"], np.int64), pa.int64()),
            }
        )
        with replacing(self.folder / f"{tag}.meta.parquet", "wb") as f:
            # uncompressed, as the band and canonical-text files beside it, and no dictionary of
            # the unique ids nor min/max statistics (nothing reads it by a predicate): 250k rows
            # written in 0.015 s instead of 0.059 s, read back in 0.011 s instead of 0.016 s
            pq.write_table(table, f, compression=None, use_dictionary=["source"], write_statistics=False)
        (self.folder / "config.json").write_text(json.dumps({**self.cfg.__dict__, "format": SIGNATURE_FORMAT}))


def _hash_order(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(``np.argsort(h, kind="stable")``, ``h`` in that order) for uint64 hashes: equal hashes in
    row order, exactly, since the band files are written in this order.

    A sort of values, not of indices: keys that carry the row number in the low bits of the hash
    (250k hashes x 28 bands: 0.16 s instead of 0.85 s for ``np.argsort(bands, axis=0,
    kind="stable")``). Rows whose hashes differ only in those low bits come out in row order,
    not hash order; the runs of equal high bits are then sorted again (rare: a 250k-row rank
    has such a pair in some band with probability ~1 %)."""
    n = len(h)
    low = np.uint64((1 << max(n - 1, 1).bit_length()) - 1)
    key = h & ~low
    key |= np.arange(n, dtype=np.uint64)
    # first in order of the top 16 bits (numpy's stable argsort of 16-bit keys is a radix sort,
    # O(n)), then a timsort, which only has to order the short runs within those buckets:
    # 7 ms for 250k keys instead of 13 ms for a plain np.sort
    key = key[np.argsort((key >> np.uint64(48)).astype(np.uint16), kind="stable")]
    key.sort(kind="stable")
    order = (key & low).astype(np.intp)
    hs = h[order]
    if (hs[1:] < hs[:-1]).any():
        key &= ~low
        run = np.flatnonzero(key[1:] == key[:-1])
        pos = np.unique(np.concatenate([run, run + 1]))
        order[pos] = order[pos][np.lexsort((order[pos], hs[pos]))]
        hs[pos] = h[order[pos]]
    return order, hs


def _save_atomic(path: Path, arr: np.ndarray) -> None:
    with replacing(path, "wb") as f:
        np.save(f, arr)


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

    takes_batches = True  # the reader's DocumentBatches too (``curation.batch``)
    takes_chunks = True  # and chunks of Documents (``curation.batch.in_chunks``)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        kind, data = peek_stream(data)
        if kind == BATCHES and self.is_synthetic is not _is_synthetic_default:
            kind, data = CHUNKS, (b.documents() for b in data)  # the callable takes Documents
        # in place when local; on object storage in scratch, uploaded at the end (meta last)
        with staged(folder(self.output_folder), last=("*.meta.parquet",)) as out:
            w = _RankWriter(str(out), rank, self.cfg)
            if kind == BATCHES:  # the columns as they are (signatures do not depend on how rows are chunked)
                for batch in data:
                    with self.track_time("batch"):
                        sources = batch.column("source", "")
                        w.add(batch.ids, batch.texts,
                              [bool(s) or src in self.synthetic_sources
                               for s, src in zip(batch.column("synthetic", False), sources)],
                              list(map(str, sources)))
                    self.stat_update("signed", value=len(batch))
                    yield batch
                w.close()
                return
            chunked, chunks = in_chunks(data, self.batch_size)
            for batch in chunks:
                with self.track_time("batch"):
                    w.add(
                        [d.id for d in batch],
                        [d.text for d in batch],
                        [self.is_synthetic(d) or d.metadata.get("source") in self.synthetic_sources for d in batch],
                        [str(d.metadata.get("source", "")) for d in batch],
                    )
                self.stat_update("signed", value=len(batch))
                yield from emit(batch, chunked)
            w.close()


class _SignatureStore:
    """Global view over the rank files of one or more signature folders (index = row order)."""

    def __init__(self, folders: list[tuple[str, bool]], cfg: DedupConfig):
        self.cfg = cfg
        self.parts = []  # (folder, tag, offset, n, is_ref)
        metas = []
        off = 0
        for local, is_ref in folders:  # memory-mapped: local folders only
            for mf in sorted(Path(local).glob("*.meta.parquet")):
                tag = mf.name.split(".")[0]
                t = pq.read_table(mf)
                self.parts.append((Path(local), tag, off, t.num_rows, is_ref))
                metas.append((t, is_ref))
                off += t.num_rows
        self.n = off
        self.offsets = np.array([p[2] for p in self.parts] + [off], dtype=np.int64)
        self.is_ref = np.concatenate([np.full(t.num_rows, r, bool) for t, r in metas]) if metas else np.zeros(0, bool)
        self.meta = (pa.concat_tables([t.select(META_SCHEMA.names).cast(META_SCHEMA) for t, _ in metas])
                     if metas else META_SCHEMA.empty_table())
        self.exact = (
            np.concatenate([t.column("exact").to_numpy() for t, _ in metas]).astype(np.uint64)
            if metas
            else np.zeros(0, np.uint64)
        )
        self._canon_end = [t.column("canon_end").to_numpy() for t, _ in metas]
        self._canon = [_map_u16(p[0] / f"{p[1]}.canon.u16") for p in self.parts]
        # all sketches in memory (112 bytes per document, twice the ids): the estimate gathers
        # the rows of ~5 candidate pairs per document in random order
        self.sketches = (np.concatenate([np.load(p[0] / f"{p[1]}.sketch.npy") for p in self.parts])
                         if self.parts else np.empty((0, cfg.num_bins), np.uint8))

    def codepoints(self, i: int) -> np.ndarray:
        p = int(np.searchsorted(self.offsets, i, side="right")) - 1
        j = i - int(self.offsets[p])
        ends = self._canon_end[p]
        return _codepoints(self._canon[p][(ends[j - 1] if j else 0) : ends[j]])

    def sketch_rows(self, idx: np.ndarray) -> np.ndarray:
        return self.sketches[idx]

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

    Reads only stage 1's files (the canonical texts of candidates included). ``reference_folder``
    (an earlier published version: Parquet files with ``id`` and ``text``, or a callable
    ``None -> iterable of (id, text)``) is signed here first; its documents are always kept,
    and a new document duplicating one is removed with ``duplicate_of`` = the reference
    document's own id. Run with ``LocalPipelineExecutor(pipeline=[NearDupClusters(...)], tasks=1)``.
    """

    name = "🫂 near-dup clusters"
    type = "🫂 - DEDUP"

    def __init__(
        self,
        signatures_folder: str,
        output_folder: str,
        reference_folder=None,
        threshold: float = 0.75,
        est_margin: float = 0.15,
        max_bucket: int = 32,
        partitions: int = 1,
        prefer: Prefer = default_prefer,
        verify=None,
    ):
        super().__init__()
        self.signatures_folder = str(signatures_folder)
        self.output_folder = str(output_folder)
        self.reference_folder = reference_folder
        self.threshold, self.est_margin, self.max_bucket = threshold, est_margin, max_bucket
        self.partitions = partitions
        self.prefer = prefer
        self.verify = verify  # rule name or {rule: ..., ...}; None: the defaults (core.verify_options)

    def _config(self) -> DedupConfig:
        df = folder(self.signatures_folder)
        base = json.loads(read_text(df, "config.json")) if exists(df, "config.json") else {"format": SIGNATURE_FORMAT}
        if base.pop("format", None) != SIGNATURE_FORMAT:
            raise ValueError(f"{join(self.signatures_folder, 'config.json')}: signatures written by another cumed "
                             f"version (format {SIGNATURE_FORMAT} expected); delete {self.signatures_folder} and run "
                             "NearDupSignatures (stage 1) again")
        base.update(threshold=self.threshold, est_margin=self.est_margin, max_bucket=self.max_bucket,
                    **verify_options(self.verify))
        return DedupConfig(**base)

    def _sign_reference(self, cfg: DedupConfig) -> str:
        target = join(self.output_folder, "reference_signatures")
        ref = self.reference_folder
        if callable(ref):
            it = ref(None)
        else:  # an earlier version's data folder, local or on object storage
            rdf = folder(ref)
            it = (
                (i, t)
                for f in names(rdf, "*.parquet", recursive=True)
                for b in parquet_batches(rdf, f, columns=["id", "text"], batch_size=10_000)
                for i, t in zip(b.column(0).to_pylist(), b.column(1).to_pylist())
            )
        with staged(folder(target), last=("*.meta.parquet",)) as out:
            w = _RankWriter(str(out), 0, cfg)
            for chunk in batched(it, 5000):
                w.add([c[0] for c in chunk], [c[1] for c in chunk], [False] * len(chunk), ["reference"] * len(chunk))
            w.close()
        return target

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        cfg = self._config()
        folders = [(self.signatures_folder, False)]
        if self.reference_folder is not None:
            folders.append((self._sign_reference(cfg), True))
        store = _SignatureStore(folders, cfg)
        stats: dict = {"documents": store.n}
        with self.track_time():
            decisions = resolve(
                store.meta,
                store.exact,
                store.is_ref,
                store.pairs_for(self.partitions),
                store.sketch_rows,
                store.codepoints,
                cfg,
                self.prefer,
                stats,
            )
        write_decisions(decisions, self.output_folder)
        (Path(self.output_folder) / "stats.json").write_text(json.dumps(stats, indent=1))
        for k, v in stats.items():
            self.stat_update(k, value=v)


def write_decisions(decisions: list[Decision], decisions_folder: str) -> None:
    t = pa.table(
        {
            "id": pa.array([d.id for d in decisions], pa.string()),
            "duplicate_of": pa.array([d.duplicate_of for d in decisions], pa.string()),
            "similarity": pa.array([d.similarity for d in decisions], pa.float64()),
            "kind": pa.array([d.kind for d in decisions], pa.string()),
        }
    )
    write_parquet(folder(decisions_folder), DECISIONS_FILE, t)


def decision_files(decisions_folder: str) -> list[str]:
    """The ``decisions.parquet`` files under a folder (local or a URL), relative to it."""
    return names(folder(decisions_folder), DECISIONS_FILE, recursive=True)


def read_decisions(decisions_folder: str) -> list[Decision]:
    files = decision_files(decisions_folder)
    if not files:
        raise FileNotFoundError(f"no {DECISIONS_FILE} under {decisions_folder}; run NearDupClusters first")
    out = []
    for f in files:
        for r in read_parquet(folder(decisions_folder), f).to_pylist():
            out.append(Decision(r["id"], r["duplicate_of"], r["similarity"], r["kind"]))
    return out
