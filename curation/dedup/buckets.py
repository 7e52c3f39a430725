"""Stage 2 of the staged dedup as parallel bucket tasks, with a last task over the pairs only.

(``cumed build`` runs these; ``NearDupClusters`` stays the one-task form and the reference.)

``NearDupClusters`` is one task whose memory grows with the corpus (the meta table and the
sketches of every document: ~1.4 KB per document). Here the same decisions come from four
datatrove stages that exchange data only through files under ``output_folder``:

1. ``ExactDuplicateTasks`` (T tasks): task t reads the ``exact`` column of stage 1's meta files,
   keeps the documents whose exact hash falls in hash range t (one T-th of the 64-bit space),
   and for each hash shared by several of them picks the keeper (``core.exact_groups`` over the
   group members' preference keys only). Writes ``exact/{t}.parquet``: removed, keeper.
2. ``CandidatePairTasks`` (T tasks): task t reads, in every band, the slice of each rank's sorted
   band file whose hashes fall in hash range t (``np.searchsorted`` on the memory-mapped file:
   only that slice is read), drops the exact duplicates of step 1 (they are not candidates, as
   in ``resolve``), pairs the members of each bucket (``core.candidate_pairs``) and filters the
   pairs by the sketch estimate (sketch rows gathered from the memory-mapped sketch files).
   Writes ``candidates/{t}.parquet``: a, b and the verifying task (a hash of the pair: a pair
   colliding in several bands is found by several tasks, and verified once).
3. ``VerifyPairTasks`` (T tasks): the pairs routed to task t, deduplicated; verified all at once
   by ``core.verify_pairs`` (the rule ``resolve`` applies pair by pair) from the canonical texts
   of their endpoints (read by range from the ``.canon.u16`` files). Writes ``pairs/{t}.parquet``:
   a, b, similarity (the actual Jaccard), for the pairs the verification accepts.
4. ``ResolveDuplicatePairs`` (one task): the same greedy best-first clustering as ``resolve``
   over the pair endpoints only, then ``decisions.parquet``.

Why the decisions are the same as ``resolve``'s: a bucket (one band hash) lies in one hash
range, and its members are concatenated in the same rank order, so the candidate pairs of all
tasks together are exactly ``resolve``'s; the estimate is per pair; ``resolve``'s greedy pass
only ever uses the pairs the verification accepts (a symmetric function of the pair) with their Jaccard, visits documents in
preference order (a total order on per-document keys, so ranking only the pair endpoints orders
them the same), and among equally similar kept neighbours takes the one with the smallest index
(its neighbour lists are ascending). Exact groups share one hash, so one task sees each whole.
The price: every estimated pair gets a Jaccard check, not only those against kept documents
(4,646 instead of 3,477 on cumed-pretrain), and ~3T+1 task start-ups.

Memory of a task: its share of one band at a time (16 bytes per document / T), its candidate
pairs, their sketch rows and the n-gram sets of their endpoints; the meta files are read in
batches, one rank file at a time. Step 3 holds the pairs and the exact duplicates: memory
proportional to the duplicates, not to the corpus. Signature files are memory-mapped; the
exchanged files are plain Parquet.

The folders may be on object storage (``cumed build --work s3://...``). A task then reads the
large signature files by byte range: a candidates task its hash range of every band file, found
from the file's fence (``SignatureFiles.band_slices``), a verify task the canonical texts of its
pairs' documents (``SignatureFiles.canon_ranges``). The small ones (meta, sketches: <200 bytes a
document) it downloads whole into its private scratch folder (``curation.workfolder.task_scratch``,
deleted when the task ends). It writes its outputs with one put each. Local folders are read in
place.

Every task records its peak memory (``VmHWM``, reset at the task's start) in
``{step}/{t}.stats.json``; ``/proc/self/status`` rather than ``ru_maxrss``, which Linux carries
across fork and exec.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from curation.compiled import preload
from curation.dedup.canonical import ShingleBatch, _mix64, shingle_batch, text_blocks
from curation.dedup.core import (
    DedupConfig,
    assemble_decisions,
    candidate_pairs,
    default_prefer,
    estimated_similarity,
    exact_groups,
    split_pairs,
    verify_pairs,
)
from curation.dedup.near import (
    BAND_FENCE,
    NearDupClusters,
    _codepoints,
    _map_u16,
    write_decisions,
)
from curation.dedup.resolve import META_SCHEMA, Prefer, preference_rank
from curation.workfolder import (folder, join, local_copy, local_root, names, read_parquet, read_text, task_scratch,
                                 write_parquet, write_text)

EXACT, CANDIDATES, PAIRS = "exact", "candidates", "pairs"
REFERENCE = "reference_signatures"
READ_BATCH = 65_536  # meta rows per Parquet batch: what a task holds of a rank file at once
# the compiled kernels of the near-duplicate stages (``curation.compiled.preload``)
DEDUP_KERNELS = ("curation.dedup.oph", "curation.dedup.sketch_estimates", "curation.dedup.pair_overlaps")
ESTIMATE_CHUNK = 200_000  # candidate pairs whose sketch rows are gathered at once (~45 MB)
SHINGLE_BLOCK = 1 << 18  # canonical characters hashed per pass (~40 bytes each of temporaries: ~10 MB)
# On object storage the candidates' canonical texts are read as byte ranges of a rank's
# ``.canon.u16``; ranges closer than this many UTF-16 units (128 KB) are read as one request: the
# bytes in between cost less than another round trip.
CANON_GAP = 1 << 16
# A verify task holds the n-grams of the documents of the pairs it checks at once (~10 bytes a
# canonical character). Its pairs grow faster than the corpus where texts share sentences (the
# 10M benchmark: verify workers 1.6 GB, stage-A ones 0.7 GB), so they are checked in batches of
# about this many characters: ~0.2 GB of n-grams whatever the task's share.
VERIFY_BATCH_CHARS = 20_000_000


def hash_cuts(parts: int) -> list[np.uint64]:
    """Bounds of ``parts`` equal ranges of the 64-bit hash space (the last one inclusive)."""
    return [np.uint64(min((2**64 * q) // parts, 2**64 - 1)) for q in range(parts + 1)]


def _in_range(h: np.ndarray, cuts: list[np.uint64], q: int) -> np.ndarray:
    m = h >= cuts[q] if q else np.ones(len(h), bool)
    if q + 1 < len(cuts) - 1:
        m &= h < cuts[q + 1]
    return m


def _bitmap(idx: np.ndarray, n: int) -> np.ndarray:
    """The set ``idx`` of indices below ``n`` as a bitmap (``_in_bitmap``): n / 8 bytes."""
    bits = np.zeros((n + 7) // 8, np.uint8)
    np.bitwise_or.at(bits, idx >> 3, np.left_shift(1, idx & 7).astype(np.uint8))
    return bits


def _in_bitmap(x: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Whether each of ``x`` is in the set; a lookup, where a binary search in the sorted
    indices took 17 ms per band slice of 250k documents (0.45 s of the candidates task)."""
    return ((bits[x >> 3] >> (x & 7)) & 1).astype(bool)


class SignatureFiles:
    """Stage 1's rank files of the corpus (then of the reference, if any) as one index space, the
    same as ``near._SignatureStore``'s, without loading them: row counts come from the Parquet
    footers; columns, sketches, band slices and canonical texts are read on demand. Files of a
    folder on object storage are downloaded into ``scratch`` on first use."""

    def __init__(self, folders: list[tuple[str, bool]], scratch: Path | None = None):
        self.parts = []  # (DataFolder, tag, offset, n, is_ref)
        self.scratch = scratch
        self._fences: dict[tuple[int, int], tuple[np.ndarray, int, int] | None] = {}  # (band, part): _read_fences
        off = 0
        for url, is_ref in folders:
            df = folder(url)
            for mf in names(df, "*.meta.parquet"):
                n = _num_rows(df, mf)
                self.parts.append((df, mf.split(".")[0], off, n, is_ref))
                off += n
        self.n = off
        self.offsets = np.array([p[2] for p in self.parts] + [off], dtype=np.int64)
        refs = [p[2] for p in self.parts if p[4]]
        self.first_ref = refs[0] if refs else off  # reference rank files come last

    def is_ref(self, idx: np.ndarray) -> np.ndarray:
        return idx >= self.first_ref

    def _by_part(self, idx: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(part, positions in ``idx``, local rows) for each part that ``idx`` touches."""
        part = np.searchsorted(self.offsets, idx, side="right") - 1
        for p in np.unique(part):
            pos = np.flatnonzero(part == p)
            yield int(p), pos, idx[pos] - self.offsets[p]

    def path(self, p: int, rel: str) -> Path:
        """A local path of part ``p``'s file ``rel`` (downloaded into scratch from object storage)."""
        return local_copy(self.parts[p][0], rel, self.scratch)

    def columns(self, p: int, names: list[str]) -> Iterator[pa.RecordBatch]:
        tag = self.parts[p][1]
        yield from pq.ParquetFile(self.path(p, f"{tag}.meta.parquet")).iter_batches(batch_size=READ_BATCH, columns=names)

    def rows(self, idx: np.ndarray, names: list[str]) -> pa.Table:
        """The meta rows of the (ascending, unique) global indices ``idx``, in that order."""
        tables = []
        for p, _, local in self._by_part(idx):
            start = 0
            for b in self.columns(p, names):
                lo, hi = np.searchsorted(local, [start, start + b.num_rows])
                if hi > lo:
                    tables.append(pa.Table.from_batches([b]).take(pa.array(local[lo:hi] - start)))
                start += b.num_rows
        schema = pa.schema([META_SCHEMA.field(c) if c in META_SCHEMA.names else pa.field(c, pa.int64()) for c in names])
        return pa.concat_tables([t.select(names).cast(schema) for t in tables]) if tables else schema.empty_table()

    def sketch_rows(self, idx: np.ndarray, bins: int) -> np.ndarray:
        out = np.empty((len(idx), bins), np.uint8)
        for p, pos, local in self._by_part(idx):
            # one part's file mapped at a time, dropped after: the pages a map has served stay
            # resident while it is mapped (``sketch_estimates`` says what all of them at once cost)
            mm = np.load(self.path(p, f"{self.parts[p][1]}.sketch.npy"), mmap_mode="r")
            # np.take, not mm[local]: ~2x faster (the rows of 1.25M candidate pairs of 250k
            # documents: 0.13 s instead of 0.34 s), and straight into ``out`` when one part has them all
            if len(pos) == len(idx):
                np.take(mm, local, axis=0, out=out)
            else:
                out[pos] = np.take(mm, local, axis=0)
        return out

    def band_slices(self, band: int, cuts: list[np.uint64], q: int) -> tuple[np.ndarray, np.ndarray]:
        """(band hashes, global indices) of every part's rows in band ``band`` within range ``q``,
        part after part. A local band file is memory-mapped. On object storage each part's rows
        are found from the band file's fence (``near.BAND_FENCE``) and read as one byte range per
        part, all parts of a folder in one ``cat_ranges`` call: a candidates task reads its share
        of every band, not every band file whole (16 bytes per document per band). Signatures
        written without fences (before them) are downloaded whole, as before."""
        hs, gs = [], []
        remote = self._remote_band_rows(band, cuts, q)
        for p in range(len(self.parts)):
            sl = remote[p] if p in remote else self._band_rows(band, p, cuts, q)
            hs.append(sl[:, 0])
            gs.append(sl[:, 1].astype(np.int64) + self.parts[p][2])
        return (np.concatenate(hs), np.concatenate(gs)) if hs else (np.zeros(0, np.uint64), np.zeros(0, np.int64))

    def _band_rows(self, band: int, p: int, cuts: list[np.uint64], q: int) -> np.ndarray:
        mm = np.load(self.path(p, f"bands/{band:02d}/{self.parts[p][1]}.npy"), mmap_mode="r")
        lo, hi = _range_rows(mm[:, 0], cuts, q)
        return np.asarray(mm[lo:hi])

    def _remote_band_rows(self, band: int, cuts: list[np.uint64], q: int) -> dict[int, np.ndarray]:
        """{part: its rows of range ``q``} for the parts on object storage that have fences."""
        by_folder: dict[int, list[int]] = {}
        for p, part in enumerate(self.parts):
            if local_root(part[0]) is None:
                by_folder.setdefault(id(part[0]), []).append(p)
        out = {}
        for ps in by_folder.values():
            self._read_fences(band, ps)
            ps = [p for p in ps if self._fences[band, p] is not None]
            windows = []
            for p in ps:
                fence, data_at, n = self._fences[band, p]
                r0, r1 = _fence_window(fence, cuts, q, n)
                windows.append((r0, r1, data_at))
            rels = [f"bands/{band:02d}/{self.parts[p][1]}.npy" for p in ps]
            data = _read_ranges(self.parts[ps[0]][0], rels, [at + 16 * r0 for r0, _, at in windows],
                                [at + 16 * r1 for _, r1, at in windows]) if ps else []
            for p, raw in zip(ps, data):
                rows = np.frombuffer(raw, dtype=np.uint64).reshape(-1, 2)
                lo, hi = _range_rows(rows[:, 0], cuts, q)
                out[p] = rows[lo:hi]
        return out

    def _read_fences(self, band: int, ps: list[int]) -> None:
        """The fence, the byte offset of the rows and the row count of band ``band``'s file of each
        part ``ps`` (of one folder) not read yet, into ``_fences``: one ``cat_ranges`` for all (the
        fence file whole, the first 4 KB of the band file for its header). None for a part without
        a fence file, or whose band file is not the plain (n, 2) uint64 array."""
        todo = [p for p in ps if (band, p) not in self._fences]
        if not todo:
            return
        rels = [rel for p in todo for rel in (f"bands/{band:02d}/{self.parts[p][1]}.fence.npy",
                                              f"bands/{band:02d}/{self.parts[p][1]}.npy")]
        got = self.parts[todo[0]][0].cat_ranges(rels, [0] * len(rels), [None, 4096] * len(todo), on_error="return")
        for k, p in enumerate(todo):
            fence_raw, head = got[2 * k], got[2 * k + 1]
            for answer in (fence_raw, head):
                if isinstance(answer, Exception) and not isinstance(answer, FileNotFoundError):
                    raise answer
            if isinstance(fence_raw, Exception) or isinstance(head, Exception):
                self._fences[band, p] = None
                continue
            f = io.BytesIO(head)
            version = np.lib.format.read_magic(f)
            shape, fortran, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                     else np.lib.format.read_array_header_2_0(f))
            plain = dtype == np.dtype("<u8") and not fortran and len(shape) == 2 and shape[1] == 2
            self._fences[band, p] = (np.load(io.BytesIO(fence_raw)), f.tell(), shape[0]) if plain else None

    def canon_bounds(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start, stop): where the canonical text of each (ascending, unique) global index ``idx``
        lies in its rank's ``.canon.u16``, from the ranks' meta ``canon_end`` (a text starts where
        the row before it ends)."""
        start, stop = np.zeros(len(idx), np.int64), np.zeros(len(idx), np.int64)
        for p, pos, local in self._by_part(idx):
            have = np.unique(np.concatenate([local, local[local > 0] - 1]))
            ends = self.rows(have + self.offsets[p], ["canon_end"]).column(0).to_numpy()
            stop[pos] = ends[np.searchsorted(have, local)]
            start[pos] = np.where(local > 0, ends[np.searchsorted(have, local - 1)], 0)
        return start, stop

    def shingles(self, idx: np.ndarray, n: int, bounds: tuple[np.ndarray, np.ndarray] | None = None) -> ShingleBatch:
        """The n-grams of the (ascending, unique) ``idx`` as one ``ShingleBatch``, text k =
        ``idx[k]``: only their canonical texts are read (slices of the rank's memory-mapped
        ``.canon.u16``), hashed in blocks of ``SHINGLE_BLOCK`` characters: one numpy pass each,
        not one ``np.unique`` per text (23,600 texts: 0.55 s -> ~0.2 s). ``bounds``: their
        ``canon_bounds``, where the caller read them already (a verify task's batches: the meta
        files are read once per task, not once per batch)."""
        start_all, stop_all = bounds if bounds is not None else self.canon_bounds(idx)
        out = []
        for p, pos, _ in self._by_part(idx):
            canon, start, stop = self.canon_ranges(p, start_all[pos], stop_all[pos])
            for t0, t1 in text_blocks(stop - start, SHINGLE_BLOCK):
                units = np.concatenate([canon[s:e] for s, e in zip(start[t0:t1].tolist(), stop[t0:t1].tolist())])
                # decoded as one: the rank writer encoded whole batches of valid texts, so no
                # surrogate pair spans two texts; a pair is one code point of its text
                cps, lens = _codepoints(units), stop[t0:t1] - start[t0:t1]
                if len(cps) < len(units):
                    low = np.flatnonzero((units >= 0xDC00) & (units < 0xE000))
                    lens = lens - np.diff(np.searchsorted(low, np.concatenate([[0], np.cumsum(lens)])))
                out.append(shingle_batch(cps, lens, n))
        return ShingleBatch.concat(out) if out else ShingleBatch.of([])


    def canon_ranges(self, p: int, start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(units, start, stop): UTF-16 units of part ``p``'s canonical texts holding the ranges
        ``[start, stop)`` (ascending, as the rows are), and the ranges within those units. A local
        file is memory-mapped whole. On object storage only the ranges are read, those less than
        ``CANON_GAP`` apart merged into one request, never the whole file: a verify task's pairs
        touch every rank, and the ranks' canonical texts together are the corpus's."""
        df, tag = self.parts[p][:2]
        rel = f"{tag}.canon.u16"
        root = local_root(df)
        if root is not None:
            return _map_u16(root / rel), start, stop
        if not len(start):
            return np.empty(0, np.uint16), start, stop
        reach = np.maximum.accumulate(stop)
        first = np.ones(len(start), dtype=bool)
        first[1:] = start[1:] > reach[:-1] + CANON_GAP  # a range that opens a new block
        heads = np.flatnonzero(first)
        b0, b1 = start[heads], np.maximum.reduceat(stop, heads)
        data = _read_ranges(df, [rel] * len(heads), (b0 * 2).tolist(), (b1 * 2).tolist())
        units = np.frombuffer(b"".join(data), dtype=np.uint16)
        # where each block starts in ``units``, then each range's shift into it
        at = np.concatenate([[0], np.cumsum(b1 - b0)[:-1]])
        shift = (at - b0)[np.cumsum(first) - 1]
        return units, start + shift, stop + shift


def _read_ranges(df, rels: list[str], starts: list[int], ends: list[int]) -> list[bytes]:
    """The bytes ``[start, end)`` of each file, fetched together; an empty range is not asked for
    (S3 answers ``bytes=N-(N-1)`` with the whole object)."""
    ask = [i for i, (s, e) in enumerate(zip(starts, ends)) if e > s]
    out = [b""] * len(rels)
    if ask:
        got = df.cat_ranges([rels[i] for i in ask], [starts[i] for i in ask], [ends[i] for i in ask], on_error="raise")
        for i, raw in zip(ask, got):
            if len(raw) != ends[i] - starts[i]:
                raise OSError(f"{rels[i]}: asked for bytes {starts[i]}-{ends[i]}, got {len(raw)}; "
                              "fix: the signature files changed while the stage ran, run the build again")
            out[i] = raw
    return out


def _range_rows(col: np.ndarray, cuts: list[np.uint64], q: int) -> tuple[int, int]:
    """The rows of sorted hashes ``col`` in range ``q`` of ``cuts`` (the first and last ranges open)."""
    lo = int(np.searchsorted(col, cuts[q], side="left")) if q else 0
    hi = int(np.searchsorted(col, cuts[q + 1], side="left")) if q + 1 < len(cuts) - 1 else len(col)
    return lo, hi


def _fence_window(fence: np.ndarray, cuts: list[np.uint64], q: int, n: int) -> tuple[int, int]:
    """Rows ``[r0, r1)`` of a band file of ``n`` rows that hold range ``q`` for sure, from its
    fence (row ``k * BAND_FENCE``'s hash at ``fence[k]``): a row before the first fence value at
    or past the range's start cannot be in it; nor one at or past a fence value at or past its end."""
    lo, hi = _range_rows(fence, cuts, q)
    return max(lo - 1, 0) * BAND_FENCE, min(n, hi * BAND_FENCE) if hi < len(fence) else n


def _num_rows(df, rel: str) -> int:
    """Rows of a Parquet file from its footer (on object storage: a ranged read, no download)."""
    root = local_root(df)
    if root is not None:
        return pq.ParquetFile(root / rel).metadata.num_rows
    with df.open(rel, "rb") as f:
        return pq.ParquetFile(f).metadata.num_rows


def _read_status(key: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:  # not Linux: no figure
        pass
    return 0


def reset_peak_memory() -> int:
    """Reset this process's ``VmHWM`` to its current RSS (Linux >= 4.0); returns that RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _read_status("VmRSS")


class _DedupTask(PipelineStep):
    """One step of the bucketed stage 2: the signature view, the config, the peak-memory record
    and the per-task stats file belong here; subclasses write ``work(rank, world_size, stats)``."""

    type = "🫂 - DEDUP"
    folder_name = ""

    def __init__(self, signatures_folder: str, output_folder: str, has_reference: bool = False,
                 threshold: float = 0.75, est_margin: float = 0.15, max_bucket: int = 32, partitions: int = 1,
                 prefer: Prefer = default_prefer, verify=None):
        super().__init__()
        self.signatures_folder, self.output_folder = str(signatures_folder), str(output_folder)
        self.has_reference = has_reference
        self.threshold, self.est_margin, self.max_bucket = threshold, est_margin, max_bucket
        self.partitions, self.prefer = max(1, int(partitions)), prefer
        self.verify = verify  # the verification rule (``core.verify_options``), as NearDupClusters
        self._scratch: Path | None = None  # this task's private folder, while it runs

    def _config(self) -> DedupConfig:
        # the same format check and overrides as the one-task stage 2
        return NearDupClusters(self.signatures_folder, self.output_folder, threshold=self.threshold,
                               est_margin=self.est_margin, max_bucket=self.max_bucket, verify=self.verify)._config()

    def files(self) -> SignatureFiles:
        folders = [(self.signatures_folder, False)]
        if self.has_reference:
            folders.append((join(self.output_folder, REFERENCE), True))
        return SignatureFiles(folders, self._scratch)

    @property
    def out(self):
        """The folder the steps exchange their files through (local, or a URL)."""
        return folder(self.output_folder)

    def write(self, table: pa.Table, step: str, rank: int) -> None:
        write_parquet(self.out, f"{step}/{rank:05d}.parquet", table)

    def read(self, step: str, **kw) -> list[pa.Table]:
        """The tables every task of ``step`` wrote, in task order."""
        return [read_parquet(self.out, f, **kw) for f in names(self.out, "*.parquet", step)]

    def exact_removed(self) -> np.ndarray:
        """(k, 2) int64 [removed, keeper] of all exact-dedup tasks, sorted by removed."""
        arr = [np.stack([t.column("removed").to_numpy(), t.column("keeper").to_numpy()], axis=1)
               for t in self.read(EXACT)]
        out = np.concatenate(arr) if arr else np.zeros((0, 2), np.int64)
        return out[np.argsort(out[:, 0], kind="stable")]

    def work(self, rank: int, world_size: int, stats: dict) -> None:
        raise NotImplementedError

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        stats: dict = {"rss_start_bytes": reset_peak_memory()}
        with self.track_time(), task_scratch("dedup") as self._scratch:
            try:
                self.work(rank, world_size, stats)
            finally:
                self._scratch = None
        stats["peak_rss_bytes"] = _read_status("VmHWM")
        write_text(self.out, f"{self.folder_name}/{rank:05d}.stats.json", json.dumps(stats, indent=1))
        for k, v in stats.items():
            if not k.endswith("_bytes"):
                self.stat_update(k, value=v)


class ExactDuplicateTasks(_DedupTask):
    """Step 1 (T tasks): exact duplicates within one exact-hash range -> ``exact/{t}.parquet``."""

    name = "🫂 exact duplicates"
    folder_name = EXACT

    def work(self, rank: int, world_size: int, stats: dict) -> None:
        files, cuts = self.files(), hash_cuts(world_size)
        hs, gs = [], []
        for p in range(len(files.parts)):
            start = int(files.offsets[p])
            for b in files.columns(p, ["exact"]):
                h = b.column(0).to_numpy().astype(np.uint64)
                m = np.flatnonzero(_in_range(h, cuts, rank))
                hs.append(h[m])
                gs.append(m + start)
                start += b.num_rows
        h = np.concatenate(hs) if hs else np.zeros(0, np.uint64)
        g = np.concatenate(gs) if gs else np.zeros(0, np.int64)
        # the members of groups of two or more, in index order (``preference_rank``'s tie order)
        u, inv, cnt = np.unique(h, return_inverse=True, return_counts=True)
        members = np.sort(g[cnt[inv] > 1])
        stats["in_range"] = int(len(g))
        removed = keeper = np.zeros(0, np.int64)
        if len(members):
            mh = h[cnt[inv] > 1][np.argsort(g[cnt[inv] > 1], kind="stable")]
            is_ref = files.is_ref(members)
            rank_ = preference_rank(files.rows(members, META_SCHEMA.names), is_ref, self.prefer)
            dup = exact_groups(mh, is_ref, rank_)
            removed = members[np.fromiter(dup.keys(), np.int64, len(dup))]
            keeper = members[np.fromiter(dup.values(), np.int64, len(dup))]
        stats["exact_removed"] = int(len(removed))
        self.write(pa.table({"removed": removed, "keeper": keeper}), EXACT, rank)


class CandidatePairTasks(_DedupTask):
    """Step 2 (T tasks): candidate pairs of one band-hash range in every band, filtered by the
    sketch estimate -> ``candidates/{t}.parquet`` (a, b, the verifying task)."""

    name = "🫂 near-dup candidates"
    folder_name = CANDIDATES

    def work(self, rank: int, world_size: int, stats: dict) -> None:
        cfg, files = self._config(), self.files()
        inactive = _bitmap(self.exact_removed()[:, 0], files.n)
        # range ``rank`` of ``world_size``, split again into ``partitions`` (what one band slice holds)
        cuts = hash_cuts(world_size * self.partitions)
        chunks = []
        for band in range(cfg.bands):
            for q in range(rank * self.partitions, (rank + 1) * self.partitions):
                h, g = files.band_slices(band, cuts, q)
                keep = ~_in_bitmap(g, inactive)
                if len(g):
                    c = candidate_pairs(h[keep], g[keep], cfg)
                    if len(c):
                        chunks.append(c)
        pairs = np.concatenate(chunks) if chunks else np.zeros(0, np.uint64)
        del chunks
        # np.unique, faster: the chunks are sorted runs (``candidate_pairs``), which a timsort
        # merges in place (250k documents, 1.6M pairs of 28 bands: 0.03 s instead of 0.12 s)
        pairs.sort(kind="stable")
        pairs = pairs[np.concatenate([[True], pairs[1:] != pairs[:-1]])] if len(pairs) else pairs
        a, b = split_pairs(pairs)
        keep = ~(files.is_ref(a) & files.is_ref(b))
        a, b = a[keep], b[keep]
        stats["candidate_pairs"] = int(len(a))

        sel = []
        for s in range(0, len(a), ESTIMATE_CHUNK):
            aa, bb = a[s : s + ESTIMATE_CHUNK], b[s : s + ESTIMATE_CHUNK]
            est = estimated_similarity(files.sketch_rows(aa, cfg.num_bins), files.sketch_rows(bb, cfg.num_bins))
            sel.append(est >= cfg.estimate_floor)
        if sel:
            m = np.concatenate(sel)
            a, b = a[m], b[m]
        stats["checked_pairs"] = int(len(a))
        # a pair found in several bands is found by several tasks: route each pair to one
        # verifying task by its hash, so its Jaccard is computed once
        with np.errstate(over="ignore"):
            dest = (_mix64((a.astype(np.uint64) << np.uint64(32)) | b.astype(np.uint64)) % np.uint64(world_size))
        self.write(pa.table({"a": a, "b": b, "dest": dest.astype(np.int32)}), CANDIDATES, rank)


class VerifyPairTasks(_DedupTask):
    """Step 3 (T tasks): the candidate pairs routed to this task, once each -> actual Jaccard
    -> ``pairs/{t}.parquet`` (the verified duplicate pairs)."""

    name = "🫂 near-dup verify"
    folder_name = PAIRS

    def work(self, rank: int, world_size: int, stats: dict) -> None:
        cfg, files = self._config(), self.files()
        parts = self.read(CANDIDATES, columns=["a", "b"], filters=[("dest", "=", rank)])
        ab = (np.unique((np.concatenate([t.column("a").to_numpy() for t in parts]).astype(np.uint64) << np.uint64(32))
                        | np.concatenate([t.column("b").to_numpy() for t in parts]).astype(np.uint64))
              if parts else np.zeros(0, np.uint64))
        a, b = split_pairs(ab)
        # the pairs in batches whose documents hold ~``VERIFY_BATCH_CHARS`` canonical characters
        # (counted per pair, so a document in several pairs counts each time and the bound holds),
        # each batch's pairs at once (``verify_pairs``, the rule ``resolve`` applies pair by pair)
        every = np.unique(np.concatenate([a, b]))
        start, stop = files.canon_bounds(every)  # once: each batch takes its documents' bounds from these
        length = stop - start  # UTF-16 units: the characters, and astral ones twice (the meta is read once)
        cost = length[np.searchsorted(every, a)] + length[np.searchsorted(every, b)]
        sims, dups = [], []
        for lo, hi in text_blocks(cost, VERIFY_BATCH_CHARS):
            nodes = np.unique(np.concatenate([a[lo:hi], b[lo:hi]]))
            at = np.searchsorted(every, nodes)
            s, d = verify_pairs(files.shingles(nodes, cfg.n, (start[at], stop[at])), np.searchsorted(nodes, a[lo:hi]),
                                np.searchsorted(nodes, b[lo:hi]), cfg)
            sims.append(s)
            dups.append(d)
        sim = np.concatenate(sims) if sims else np.zeros(0)
        dup = np.concatenate(dups) if dups else np.zeros(0, bool)
        stats["jaccard_checks"] = int(len(a))
        stats["verify_batches"] = len(sims)
        stats["duplicate_pairs"] = int(dup.sum())
        self.write(pa.table({"a": a[dup], "b": b[dup], "similarity": sim[dup]}), PAIRS, rank)


class ResolveDuplicatePairs(_DedupTask):
    """Step 3 (one task): the pairs of all tasks -> greedy best-first keepers (as ``resolve``)
    -> ``decisions.parquet``. Holds the pairs, the exact duplicates and their ids only."""

    name = "🫂 near-dup clusters"
    folder_name = "resolve"

    def __init__(self, signatures_folder: str, output_folder: str, decisions_folder: str | None = None, **kwargs):
        super().__init__(signatures_folder, output_folder, **kwargs)
        self.decisions_folder = str(decisions_folder or output_folder)

    def work(self, rank: int, world_size: int, stats: dict) -> None:
        files = self.files()
        t = pa.concat_tables(self.read(PAIRS))
        a, b, sim = (t.column(c).to_numpy() for c in ("a", "b", "similarity"))
        # each pair was verified by one task; sorted (a, b) is the order ``resolve`` reads them in
        order = np.lexsort((b, a))
        a, b, sim = a[order], b[order], sim[order]
        first = np.ones(len(a), bool)
        first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
        a, b, sim = a[first], b[first], sim[first]
        exact = self.exact_removed()

        nodes = np.unique(np.concatenate([a, b]))
        is_ref = files.is_ref(nodes)
        rank_ = preference_rank(files.rows(nodes, META_SCHEMA.names), is_ref, self.prefer)
        # neighbours in ascending index, as ``resolve`` builds them from the sorted pair list
        nbrs: dict[int, list[tuple[int, float]]] = {}
        for i, j, s in sorted([(i, j, s) for i, j, s in zip(a.tolist(), b.tolist(), sim.tolist())]
                              + [(j, i, s) for i, j, s in zip(a.tolist(), b.tolist(), sim.tolist())]):
            nbrs.setdefault(i, []).append((j, s))
        kept: set[int] = set()
        near: dict[int, tuple[int, float]] = {}
        for k in np.argsort(rank_, kind="stable").tolist():
            i = int(nodes[k])
            if is_ref[k]:
                kept.add(i)
                continue
            best = None
            for j, s in nbrs[i]:
                if j in kept and (best is None or s > best[1]):
                    best = (j, s)
            if best is None:
                kept.add(i)
            else:
                near[i] = best

        named = np.unique(np.concatenate([nodes, exact.ravel()]))
        ids = dict(zip(named.tolist(), files.rows(named, ["id"]).column(0).to_pylist()))
        out = assemble_decisions(near, exact.tolist(), ids)
        write_decisions(out, self.decisions_folder)

        for name in (EXACT, CANDIDATES, PAIRS):  # the tasks' counters, summed, next to this task's own
            for f in names(self.out, "*.stats.json", name):
                for key, v in json.loads(read_text(self.out, f)).items():
                    if not key.endswith("_bytes"):
                        stats[key] = stats.get(key, 0) + v
        stats.pop("exact_removed", None)
        stats.pop("in_range", None)
        stats["documents"] = files.n
        stats["duplicate_pairs"] = int(len(a))
        stats["exact_removed"] = sum(1 for d in out if d.kind == "exact")
        stats["near_removed"] = len(out) - stats["exact_removed"]
        write_text(folder(self.decisions_folder), "stats.json", json.dumps(
            {k: v for k, v in stats.items() if not k.endswith("_bytes")}, indent=1))


class SignReference(_DedupTask):
    """Before step 1 when deduplicating against an earlier version (one task): sign its texts
    into ``reference_signatures/``, which the tasks then read as the last rank files."""

    name = "🫂 sign reference"
    folder_name = REFERENCE + "_task"

    def __init__(self, signatures_folder: str, output_folder: str, reference_folder, **kwargs):
        super().__init__(signatures_folder, output_folder, has_reference=True, **kwargs)
        self.reference_folder = reference_folder

    def work(self, rank: int, world_size: int, stats: dict) -> None:
        NearDupClusters(self.signatures_folder, self.output_folder, reference_folder=self.reference_folder,
                        )._sign_reference(self._config())


def bucket_stages(signatures_folder: str, output_folder: str, tasks: int, reference_folder=None,
                  **cluster_kwargs) -> list[tuple[str, str, list[PipelineStep], int]]:
    """Stage 2 in bucket tasks, as (log folder name, label, pipeline, tasks) to run in order.

    The work of each step is keyed by ``tasks`` (``buckets-{tasks}/``), so a resumed build with
    another task count never mixes the files of two splits; the decisions are the same for any
    ``tasks`` and go to ``output_folder/decisions.parquet`` as ``NearDupClusters`` writes them.
    """
    tasks = max(1, int(tasks))
    work = join(output_folder, f"buckets-{tasks}")
    ref = reference_folder is not None
    kw = dict(has_reference=ref, **cluster_kwargs)
    stages = []
    if ref:
        kw_ref = {k: v for k, v in kw.items() if k != "has_reference"}
        stages.append((f"b-reference-{tasks}", "sign reference", [SignReference(signatures_folder, work, reference_folder, **kw_ref)], 1))
    stages += [
        (f"b-exact-{tasks}", "exact duplicates", [ExactDuplicateTasks(signatures_folder, work, **kw)], tasks),
        (f"b-candidates-{tasks}", "near-duplicate candidates", [CandidatePairTasks(signatures_folder, work, **kw)], tasks),
        (f"b-verify-{tasks}", "near-duplicate check", [VerifyPairTasks(signatures_folder, work, **kw)], tasks),
    ]
    resolve_step = ResolveDuplicatePairs(signatures_folder, work, decisions_folder=output_folder, **kw)
    return stages + [("b", "find duplicates", [resolve_step], 1)]


def run_measured(step: PipelineStep, rank: int = 0, world_size: int = 1) -> tuple[int, int]:
    """Run one task of ``step`` and return (peak RSS, peak above the task's start) in bytes: the
    figures the benchmark and the memory test report. Call it in a fresh process (a forkserver
    child): a process forked from a large parent reuses the parent's freed heap and hides growth.
    The Parquet reader and the compiled kernels are warmed first, so the ~60 MB of Arrow library
    code paged in on first use and the ~100 MB of numba and LLVM that loading a kernel brings count
    as the start, not as the task's data (a build's worker has them from its first task on)."""
    files = SignatureFiles([(step.signatures_folder, False)])
    if files.n:
        files.rows(np.arange(1), [*META_SCHEMA.names, "canon_end"])
    preload(*DEDUP_KERNELS)
    start = reset_peak_memory()
    for _ in step.run(None, rank, world_size) or []:
        pass
    peak = _read_status("VmHWM")
    return peak, peak - start
