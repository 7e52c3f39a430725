"""The dedup algorithm, shared by the in-memory ``find_duplicates`` and the staged datatrove path.

Pipeline (each piece a plain function on numpy arrays, so the staged steps in ``near.py`` and
``find_duplicates`` run the very same code):

1. ``signatures``: one-permutation hashing (OPH, Li et al. 2012) over character 5-gram hashes
   of the canonical text. One hash per n-gram (not 112 permutations): the 64-bit n-gram hash
   picks the bin with its high 32 bits and competes for the bin minimum with its low 32 bits.
   All documents of a batch are hashed in one numpy pass (``np.minimum.at``). Empty bins (short
   texts) are filled by optimal densification (Shrivastava 2017): bin j borrows the value of the
   first non-empty bin along a fixed pseudo-random probe sequence of j, identical for all docs.
2. ``band_hashes``: LSH, ``bands`` x ``rows`` bins (default 28 x 4 = 112 bins). With r=4 a pair
   at Jaccard 0.7 becomes a candidate with probability 1-(1-0.7^4)^28 = 0.9995, at 0.5 0.84:
   the bands are sensitive on purpose, because every candidate is checked afterwards.
3. ``candidate_pairs``: docs sharing a band hash; a bucket larger than ``max_bucket`` (templated
   text) only pairs members within ``max_bucket`` positions of each other in hash order.
4. ``estimated_similarity``: fraction of equal OPH bins (their low 8 bits, ``sketch``), a cheap
   filter before fetching texts (keeps pairs with estimate >= ``DedupConfig.estimate_floor``:
   ``est_margin`` below the lowest Jaccard the rule accepts; the estimate's standard deviation at
   J=0.7 with 112 bins is 0.043, so the default margin 0.15 is ~3.5 sigma).
5. ``verify_pairs`` (many pairs per numpy pass; ``verify_pair`` for one): the actual Jaccard of
   the two character-shingle sets and, under the default ``verify="coverage"``, the share of each
   text's characters covered by shared 5-grams and the passages each text has of its own
   (``DedupConfig``; ``verify="jaccard"``: Jaccard >= ``threshold`` only). Two disease cards
   that share the 39health template but not the content land in the same buckets and are
   rejected here.
6. greedy clustering (``resolve.resolve``). Documents are visited best first (reference docs first, then
   the ``prefer`` key); a document with a verified edge to an already kept document is removed
   as a duplicate of the most similar one, otherwise it is kept. Every ``duplicate_of`` thus
   names a kept (or reference) document it was verified against, with no chaining
   A~B~C that would remove C for looking like A.

What this module does not do: read or write files (``near.py``), or decide what "best" means
beyond the default ``default_prefer`` (non-synthetic first, then longest, then smallest id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from curation.dedup.canonical import ShingleBatch, Shingles, _mix64, overlaps


VERIFY_RULES = ("coverage", "jaccard")
# the fields of DedupConfig that decide the verification (``verify_options``)
VERIFY_FIELDS = ("verify", "cover_both", "cover_one", "cover_other", "passage_chars", "passage_share")


@dataclass(frozen=True)
class DedupConfig:
    """Parameters of the near-duplicate search: 5-grams as in datasketch/Lee et al. 2022 for
    Chinese characters, 28 x 4 LSH bands, and the verification of each candidate pair.

    ``verify="coverage"`` (the default since issue #17, ``verify_pair``). A character of one text
    is *covered* when a 5-gram containing it occurs in the other (``canonical.uncovered``): a
    substituted or inserted character uncovers itself alone, where it breaks five 5-grams of the
    Jaccard. A candidate pair is a near-duplicate when

    1. both texts are >= ``cover_both`` (0.95) covered: scattered edits, swapped sentences; or
    2. one text is >= ``cover_one`` (0.99) covered and the other >= ``cover_other`` (0.6): one
       lies inside the other (a dropped sentence, an appended disclaimer), but a short text
       inside a long one is not its copy; or
    3. the actual 5-gram Jaccard is >= ``threshold`` (0.75, the rule before issue #17), unless
       both texts have a passage of their own: a run of >= ``passage_chars`` (10) uncovered
       characters that is also >= ``passage_share`` (1 %) of that text (a different patient
       question over the same templated answer).

    Why these values (BENCHMARKS.md, "Dedup on the planted set and the decontamination rule
    (issue 17)", ``benchmarks/dedup_recall.py``; the issue's planted set: 3 % character edits, any
    sentence dropped, sentences swapped, a disclaimer, Traditional script, originals >= 50
    characters): 3 % edits sit at Jaccard 0.69-0.93 (median 0.76), so the Jaccard rule at 0.75
    finds 72 % of them; 86 % are >= 0.95 covered on both sides, and rules 1 + 3 find 95-96 %.
    The issue's negatives, distinct questions that share a templated doctor answer (Huatuo-26M
    test and Toyhom, 434 pairs, ``plant.templated_answer_pairs``), are covered at most 0.98 on one
    side and 0.90 on both; the two of them at Jaccard >= 0.75 (0.84, 0.80: a 300-540-character
    stock answer under a short question) have own passages of >= 11 characters on both sides.
    0.95 and 0.99, not lower: the template covers most of a short 39health card, and two cards of
    distinct diseases reach 0.944 on both sides and 0.985 on one (3,450 candidate card pairs).
    10 characters for an own passage: 3 % edits cluster into runs of >= 8 in 1.3 % of copies
    (rule 1 finds most of them anyway), and a re-posted consultation with a reworded title has
    runs of 8-9 on both sides (a duplicate); the share keeps revised versions of long papers
    (runs of 30-200 characters in 10,000) together. 0.6 for the other text: a dropped sentence
    removes up to 40 % of a short text in 95 % of copies, and below Jaccard ~0.6 the 28 x 4 bands
    find a pair less often (0.98 at J 0.6, 0.84 at 0.5).

    ``verify="jaccard"``: the rule before issue #17, actual Jaccard >= ``threshold``, nothing else.
    """

    n: int = 5
    bands: int = 28
    rows: int = 4
    threshold: float = 0.75
    est_margin: float = 0.15
    max_bucket: int = 32
    densify_tries: int = 64
    seed: int = 1
    verify: str = "coverage"
    cover_both: float = 0.95
    cover_one: float = 0.99
    cover_other: float = 0.6
    passage_chars: int = 10
    passage_share: float = 0.01

    def __post_init__(self):
        if self.verify not in VERIFY_RULES:
            raise ValueError(f"dedup verify {self.verify!r}: one of {', '.join(VERIFY_RULES)}")

    @property
    def num_bins(self) -> int:
        return self.bands * self.rows

    @property
    def estimate_floor(self) -> float:
        """Candidate pairs whose sketch estimate is below this are not verified: ``est_margin``
        below the lowest Jaccard the rule accepts with no edit (a text inside another, covering
        ``cover_other`` of it, has Jaccard ~``cover_other``)."""
        low = self.threshold if self.verify == "jaccard" else min(self.threshold, self.cover_other)
        return low - self.est_margin


def verify_options(spec) -> dict:
    """The ``DedupConfig`` fields of a ``verify`` option as a recipe writes it: a rule name
    (``coverage`` | ``jaccard``), a mapping ``{rule: coverage, cover_one: 0.9, ...}``, or None
    (the defaults). Every verification field is returned, so it overrides what a signature
    folder's ``config.json`` recorded."""
    defaults = {k: DedupConfig.__dataclass_fields__[k].default for k in VERIFY_FIELDS}
    if spec is None:
        return defaults
    if isinstance(spec, str):
        return {**defaults, "verify": spec}
    spec = dict(spec)
    rule = spec.pop("rule", spec.pop("verify", defaults["verify"]))
    unknown = set(spec) - set(VERIFY_FIELDS)
    if unknown:
        raise ValueError(f"dedup verify: unknown option(s) {', '.join(sorted(unknown))}; "
                         f"allowed: rule, {', '.join(VERIFY_FIELDS[1:])}")
    return {**defaults, **spec, "verify": rule}


def verify_pair(a: Shingles, b: Shingles, cfg: DedupConfig) -> tuple[float, bool]:
    """(actual Jaccard of the two n-gram sets, whether the pair is a near-duplicate under
    ``cfg.verify``; see ``DedupConfig``): ``verify_pairs`` of one pair."""
    sim, dup = verify_pairs(ShingleBatch.of([a, b]), np.array([0]), np.array([1]), cfg)
    return float(sim[0]), bool(dup[0])


def verify_pairs(sh: ShingleBatch, a: np.ndarray, b: np.ndarray, cfg: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    """(actual Jaccard, near-duplicate or not) of each pair of texts (``a[k]``, ``b[k]``) of ``sh``:
    the one verification of the single-task and the bucketed stage 2 (``DedupConfig``), many
    pairs per numpy pass (``canonical.overlaps``); the Jaccard is what a decision records as its
    similarity. The arithmetic is Python's on each pair: int / int and float * int are the same
    IEEE operations in numpy, so the floats and decisions are bit for bit ``verify_pair``'s."""
    if cfg.verify == "jaccard":
        (j,) = overlaps(sh, a, b, cfg.n, coverage=False)
        return j, j >= cfg.threshold
    j, ua, ra, ub, rb = overlaps(sh, a, b, cfg.n)
    la, lb = sh.length[a], sh.length[b]
    ca, cb = np.ones(len(j)), np.ones(len(j))  # an empty text is covered
    np.subtract(1, ua / np.maximum(la, 1), out=ca, where=la > 0)
    np.subtract(1, ub / np.maximum(lb, 1), out=cb, where=lb > 0)
    lo, hi = np.minimum(ca, cb), np.maximum(ca, cb)
    covered = (lo >= cfg.cover_both) | ((hi >= cfg.cover_one) & (lo >= cfg.cover_other))
    own = ((ra >= np.maximum(cfg.passage_chars, cfg.passage_share * la))
           & (rb >= np.maximum(cfg.passage_chars, cfg.passage_share * lb)))
    return j, covered | ((j >= cfg.threshold) & ~own)


@dataclass(frozen=True, order=True)
class Decision:
    """One removed document: ``id`` is a duplicate of the kept ``duplicate_of``."""

    id: str
    duplicate_of: str
    similarity: float
    kind: str  # "exact" | "near"


def assemble_decisions(near: dict, exact, ids) -> list:
    """The decisions, sorted by id: every near duplicate ``i -> (keeper, similarity)``, and every
    exact duplicate ``(i, keeper)``, pointed at the final keeper when its keeper itself went as a
    near duplicate. ``ids[i]`` is document index i's id. One function for the single-task and the
    bucketed stage B, which must decide the same."""
    out = [Decision(ids[i], ids[k], round(float(s), 4), "near") for i, (k, s) in near.items()]
    for i, k in exact:
        if k in near:  # the exact keeper itself went: point at the final keeper
            k2, s = near[k]
            out.append(Decision(ids[i], ids[k2], round(float(s), 4), "near"))
        else:
            out.append(Decision(ids[i], ids[k], 1.0, "exact"))
    out.sort(key=lambda d: d.id)
    return out


def default_prefer(row: Mapping) -> tuple:
    """Sort key, lower is better: non-synthetic first, then longer canonical text, then id."""
    return (bool(row.get("synthetic", False)), -int(row.get("length", 0)), str(row["id"]))


# ----------------------------------------------------------------------------- signatures
def _probe_table(cfg: DedupConfig) -> np.ndarray:
    rng = np.random.default_rng(cfg.seed)
    return rng.integers(0, cfg.num_bins, size=(cfg.densify_tries, cfg.num_bins))


def signatures(cps: np.ndarray, lens: np.ndarray, cfg: DedupConfig) -> np.ndarray:
    """(len(lens), num_bins) uint32 densified OPH signatures of a batch of canonical texts given
    as concatenated code points ``cps`` and per-text ``lens`` (``canonical_batch``), in one
    compiled pass (``oph``, which states the definition). In numpy, ~20 passes over the batch
    (hashes, bins, a scatter-minimum, the densification's probes), it took ~1.9x the time (250k
    short QA records in the build's 2,048-text batches: 0.45 s against 0.24 s)."""
    from curation.dedup.oph import oph_signatures  # numba: loaded when used

    return oph_signatures(cps, lens, cfg.n, _probe_table(cfg))


def band_hashes(sig: np.ndarray, cfg: DedupConfig) -> np.ndarray:
    """(n_docs, bands) uint64: one hash per band of ``rows`` consecutive bins."""
    nd = sig.shape[0]
    s = sig.reshape(nd, cfg.bands, cfg.rows).astype(np.uint64)
    h = np.broadcast_to(np.arange(1, cfg.bands + 1, dtype=np.uint64), (nd, cfg.bands)).copy()
    with np.errstate(over="ignore"):
        for r in range(cfg.rows):
            h = _mix64(h * np.uint64(0x100000001B3) + s[:, :, r])
    return h


# ----------------------------------------------------------------------------- candidates
def candidate_pairs(band: np.ndarray, doc_idx: np.ndarray, cfg: DedupConfig) -> np.ndarray:
    """Pairs (as uint64 ``a << 32 | b``, a < b, ascending and distinct) of docs whose hash in one band is equal.

    ``band`` holds the band hashes, ``doc_idx`` the global doc index of each row.
    """
    order = np.argsort(band, kind="stable")
    hs, ds = band[order], doc_idx[order]
    same_next = hs[1:] == hs[:-1]
    in_run = np.zeros(len(hs), dtype=bool)
    in_run[1:] |= same_next
    in_run[:-1] |= same_next
    hs, ds = hs[in_run], ds[in_run]
    out = []
    for d in range(1, cfg.max_bucket + 1):
        if len(hs) <= d:
            break
        m = hs[d:] == hs[:-d]
        if not m.any():
            break
        a, b = ds[:-d][m].astype(np.uint64), ds[d:][m].astype(np.uint64)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        out.append((lo << np.uint64(32)) | hi)
    if not out:
        return np.empty(0, dtype=np.uint64)
    # sorted, and already distinct: a document has one row per band, so each pair of rows (one
    # distance d apart) is a pair of documents once (a sort, not np.unique's sort and mask)
    pairs = np.concatenate(out)
    pairs.sort()
    return pairs


def split_pairs(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (pairs >> np.uint64(32)).astype(np.int64), (pairs & np.uint64(0xFFFFFFFF)).astype(np.int64)


def sketch(sig: np.ndarray) -> np.ndarray:
    """The low 8 bits of each OPH bin: what the similarity estimate reads (4x less to store and
    gather than the signature). Two unequal bins agree by chance with probability 1/256, so the
    estimate of a pair at Jaccard J reads J + (1 - J)/256: at most 0.004 high, against a margin of 0.15."""
    return (sig & np.uint32(0xFF)).astype(np.uint8)


def estimated_similarity(sketch_a: np.ndarray, sketch_b: np.ndarray) -> np.ndarray:
    """Fraction of equal bins of two stacks of ``sketch`` rows, compiled (``sketch_estimates``:
    one pass over each pair's rows, where ``count_nonzero(a == b, axis=1)`` made a third array)."""
    from curation.dedup.sketch_estimates import sketch_estimates  # numba: loaded when used

    return sketch_estimates(sketch_a, sketch_b)


# ----------------------------------------------------------------------------- clustering
def exact_groups(hashes: np.ndarray, is_ref: np.ndarray, rank: np.ndarray) -> dict[int, int]:
    """{removed doc index: kept doc index} for docs whose canonical text hash is equal.

    Within a group the keeper is a reference doc if there is one (lowest ``rank`` among them),
    otherwise the lowest ``rank`` (position in the preference order).
    """
    # key: (hash, not-ref, rank) -> first of each hash run is the keeper
    order = np.lexsort((rank, ~is_ref, hashes))
    hs = hashes[order]
    first = np.ones(len(hs), dtype=bool)
    first[1:] = hs[1:] != hs[:-1]
    run_start = np.maximum.accumulate(np.where(first, np.arange(len(hs)), 0))
    keeper = order[run_start]
    dup = ~first & ~is_ref[order]
    return dict(zip(order[dup].tolist(), keeper[dup].tolist()))
