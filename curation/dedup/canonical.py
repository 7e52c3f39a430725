"""Canonical form of a text for deduplication and decontamination, and its character n-grams.

Two copies of a document are "the same" for dedup if they differ only in things a reader does
not care about: script (Traditional vs Simplified), width/compatibility forms, punctuation and
whitespace. ``canonical(text)`` maps all of those away:

1. OpenCC ``t2s`` (Traditional -> Simplified), applied only when the text contains at least one
   character that t2s would change (t2s runs ~150 MB/s on this box; most text skips it);
2. NFKC: full-width ``ＡＢＣ１２３`` -> ``ABC123``, compatibility ideographs -> unified ones;
3. casefold, then drop every character that is not a letter or digit (``\\W`` and ``_``):
   punctuation of all widths, whitespace, line breaks, emoji.

``canonical_batch`` does all three for a batch of texts with one table lookup per code point in
numpy (the same table flags the texts that need t2s): per-string NFKC + regex ran at ~13 MB/s
on this box and was the slowest part of dedup, because nearly every Chinese text contains
full-width punctuation and so is not NFKC-normalised.

``text_window_hashes`` / ``ngram_sets`` hash every character n-gram of many canonical texts at
once (a polynomial hash of the uint32 code points finished with splitmix64; no Python loop per
n-gram).
Character, not word, n-grams: Chinese has no spaces and word tokenisers disagree with each
other, so word shingles miss Chinese near-duplicates (datatrove with ``zh`` picks a tokenizer
that splits differently from run to run of edits).

Deliberately not done: stemming, stop-word removal, number normalisation. Two disease cards
that differ only in a dosage must stay different documents.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from operator import is_
from typing import NamedTuple

import numpy as np
import xxhash

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
# a large odd 64-bit multiplier (2^64 / golden ratio): the polynomial hash of code points here, and
# Fibonacci hashing (a key's slot: the high bits of key * GOLDEN) in the compiled hash tables
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@lru_cache(maxsize=1)
def _t2s():
    """(OpenCC t2s converter, the sorted code points it changes on their own).

    Every CJK character (BMP blocks) that t2s changes on its own: ~3,800 characters."""
    try:
        import opencc
    except ImportError as e:  # pragma: no cover - opencc is a core dependency
        raise ImportError("cumed dedup needs OpenCC for Traditional->Simplified: pip install opencc") from e
    conv = opencc.OpenCC("t2s")
    chars = [chr(c) for c in range(0x3400, 0xA000)] + [chr(c) for c in range(0xF900, 0xFB00)]
    out = conv.convert("\n".join(chars)).split("\n")
    return conv, np.array([ord(a) for a, b in zip(chars, out) if a != b], dtype=np.uint32)


@lru_cache(maxsize=1)
def _has_traditional():
    return re.compile("[" + re.escape("".join(map(chr, _t2s()[1].tolist()))) + "]")


def to_simplified(text: str) -> str:
    """OpenCC t2s, skipped (and cheap) when the text has no character that t2s would change."""
    return _t2s()[0].convert(text) if _has_traditional().search(text) else text


def _fold(text: str) -> str:
    """NFKC -> casefold -> drop non-word characters (the definition after t2s)."""
    return _NON_WORD.sub("", unicodedata.normalize("NFKC", text).casefold())


def _slow_canonical(text: str) -> str:
    """The definition: t2s -> NFKC -> casefold -> drop non-word characters.

    t2s runs once, on the original text: OpenCC's phrase rules depend on the neighbours (e.g.
    ``於`` stays in some contexts), so running it again after NFKC would change them."""
    return _fold(to_simplified(text))


# table values that send a text off the vectorised path (see ``_table``)
SLOW = np.uint32(0xFFFFFFFF)  # needs its expansion spliced in, or the string path
TRAD = np.uint32(0xFFFFFFFE)  # t2s changes it: the text is converted first


@lru_cache(maxsize=2)
def _table(simplify: bool = False) -> np.ndarray:
    """Per-BMP-code-point table for the vectorised path: ``TABLE[c]`` is the one character
    ``c`` becomes (0 = dropped), or ``SLOW`` when ``c`` needs the string path, because its
    NFKC/casefold is several characters (``①``, ``㎡``, ``ß``), it composes with neighbours
    (combining marks, Hangul jamo), or it is a compatibility ideograph. With ``simplify``,
    characters that t2s changes read ``TRAD``: one lookup finds both kinds of text.
    """
    if simplify:
        # ``_table(False)`` as ``_canonical_batch`` calls it: lru_cache keys ``_table()`` apart
        # from ``_table(False)``, and the table was built twice (0.1-0.3 s per process)
        table = _table(False).copy()
        table[_t2s()[1]] = TRAD
        return table
    codes = [c for c in range(1, 0x10000) if not 0xD800 <= c <= 0xDFFF]  # U+0000 (dropped) separates
    chars = [chr(c) for c in codes]
    # NFKC of the whole "\0"-separated string equals NFKC of each character on its own: U+0000 is
    # a starter that nothing composes with, so nothing crosses a separator (one call, not 63,488)
    outs = unicodedata.normalize("NFKC", "\0".join(chars)).casefold().split("\0")
    table = np.zeros(0x10000, dtype=np.uint32)
    for c, ch, out in zip(codes, chars, outs):
        out = out if len(out) == 1 and out.isalnum() else _NON_WORD.sub("", out)
        if len(out) > 1 or _context_dependent(ch) or 0xF900 <= c <= 0xFAFF:
            table[c] = SLOW
        elif out:
            table[c] = ord(out)
    return table


def _context_dependent(ch: str) -> bool:
    """Characters whose NFKC depends on their neighbours: combining marks and Hangul jamo."""
    c = ord(ch)
    return (
        unicodedata.category(ch).startswith("M")
        or 0x1100 <= c <= 0x11FF
        or 0x3130 <= c <= 0x318F
        or 0xA960 <= c <= 0xA97F
        or 0xD7B0 <= c <= 0xD7FF
        or 0xFFA0 <= c <= 0xFFDC
    )


@lru_cache(maxsize=8192)
def _expansion(ch: str) -> np.ndarray | None:
    """Canonical code points of one table-``SLOW`` or astral character when they do not depend
    on its neighbours (``Ⅱ`` -> ``ii``, ``㎎`` -> ``mg``, ``𝑥`` -> ``x``), else None."""
    norm = unicodedata.normalize("NFKC", ch)
    if any(_context_dependent(x) for x in ch + norm):
        return None
    return codepoints(_NON_WORD.sub("", norm.casefold()))


def _spliced(seg: np.ndarray, text: str, slow_at: np.ndarray) -> np.ndarray | None:
    """One text's canonical code points from its table lookup ``seg`` (0 = dropped) with the
    ``SLOW`` positions ``slow_at`` replaced by their expansions; None if one needs context."""
    pieces, prev = [], 0
    for p in slow_at.tolist():
        e = _expansion(text[p])
        if e is None:
            return None
        pieces += [seg[prev:p], e]
        prev = p + 1
    pieces.append(seg[prev:])
    out = np.concatenate(pieces)
    return out[out != 0]


def canonical_batch(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Canonical forms of many texts at once: (concatenated uint32 code points, length per text).

    Same result as ``canonical`` on each text, ~30x faster: one table lookup per code point in
    numpy instead of t2s + NFKC + regex per string; per-text lengths come from the positions of
    the dropped characters (no per-code-point text index). The few texts the table flags take a
    slower path: those with characters t2s changes are converted with OpenCC first; characters
    the table cannot map to one character (``_table``; astral-plane ones too) get their
    expansions spliced in when those do not depend on neighbours (Roman numerals, unit symbols:
    the common case), otherwise the text takes the string path. The texts of the last call, or
    some of them, get the last answer (``_from_last``); it is read-only, as it may be shared.
    """
    global _last
    last = _from_last(texts)
    if last is not None:
        return last
    cps, lens = _canonical_batch(texts, simplify=True)
    _last = None
    if len(cps) <= LAST_MAX_CHARS:
        cps.flags.writeable = lens.flags.writeable = False  # handed to more than one caller
        _last = (list(texts), cps, lens)
    return cps, lens


# canonical_batch's last (texts, code points, lengths). In a build, the near-duplicate signatures
# ask for the texts decontamination has just canonicalised (less the few it removed): the same
# string objects, so the answer is the last one, or a selection of it (~1.5 s a million records).
# Kept for a chunk up to the reader's 2M characters (``build.reader.CHUNK_CHARS``), not for the
# large batches of stage B and the in-memory path.
_last: tuple[list[str], np.ndarray, np.ndarray] | None = None
LAST_MAX_CHARS = 2_000_000


def _from_last(texts: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """The last answer when ``texts`` are the last texts, or some of them in the same order
    (identity checked text by text); else None."""
    if _last is None or len(texts) > len(_last[0]):
        return None
    prev, cps, lens = _last
    if len(texts) == len(prev) and all(map(is_, prev, texts)):
        return cps, lens
    if not texts or not any(t is texts[0] for t in prev):  # other texts (a dedup-only build's batches)
        return None
    at = {id(t): i for i, t in enumerate(prev)}
    idx = [at.get(id(t), -1) for t in texts]
    if any(i < 0 or prev[i] is not t for i, t in zip(idx, texts)) or any(a >= b for a, b in zip(idx, idx[1:])):
        return None
    keep = np.zeros(len(prev), dtype=bool)
    keep[idx] = True
    return cps[np.repeat(keep, lens)], lens[keep]


def _canonical_batch(texts: list[str], simplify: bool) -> tuple[np.ndarray, np.ndarray]:
    table = _table(simplify)
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    bounds = np.concatenate([[0], np.cumsum(lens)])
    cps = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
    astral = cps > 0xFFFF
    if astral.any():
        mapped = table[np.minimum(cps, 0xFFFF)]
        mapped[astral] = SLOW
    else:
        mapped = table[cps]
    flagged = np.flatnonzero(mapped >= TRAD)
    flagged_of = np.searchsorted(bounds, flagged, side="right") - 1
    flagged_docs, first = np.unique(flagged_of, return_index=True)
    special: dict[int, np.ndarray] = {}
    traditional = []
    for d, ps in zip(flagged_docs.tolist(), np.split(flagged, first[1:])):
        b0, b1 = bounds[d], bounds[d + 1]
        if simplify and (mapped[ps] == TRAD).any():
            traditional.append(d)
        else:
            c = _spliced(mapped[b0:b1], texts[d], ps - b0) if len(ps) <= 256 else None
            special[d] = c if c is not None else codepoints(_fold(texts[d]))
        mapped[b0:b1] = 0  # spliced in below
    if traditional:  # converted, then canonicalised as a batch of their own
        conv = _t2s()[0]
        cps_t, lens_t = _canonical_batch([conv.convert(texts[d]) for d in traditional], simplify=False)
        special.update(zip(traditional, np.split(cps_t, np.cumsum(lens_t)[:-1])))
        special = dict(sorted(special.items()))
    keep = mapped != 0
    out = mapped[keep]
    # dropped characters (punctuation, spaces) are the minority: count them per text
    dropped = np.flatnonzero(~keep)
    new_lens = lens - np.diff(np.searchsorted(dropped, bounds))
    if special:
        pieces, start = [], 0
        offs = np.concatenate([[0], np.cumsum(new_lens)])
        for d, c in special.items():
            pieces += [out[start : offs[d]], c]
            start = offs[d]
            new_lens[d] = len(c)
        pieces.append(out[start:])
        out = np.concatenate(pieces)
    return out, new_lens


def canonical(text: str) -> str:
    """t2s -> NFKC -> casefold -> strip punctuation and whitespace (see module doc)."""
    cps, _ = canonical_batch([text])
    return cps.tobytes().decode("utf-32-le")


def exact_hash(canon: str | np.ndarray) -> int:
    """64-bit hash of a canonical text or its code points (exact-duplicate key). xxh3: ~10 GB/s."""
    if isinstance(canon, str):
        canon = codepoints(canon)
    return xxhash.xxh3_64_intdigest(np.ascontiguousarray(canon, dtype=np.uint32).tobytes())


def exact_hashes(cps: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """uint64 ``exact_hash`` of each text of a batch (``canonical_batch``'s code points and lengths).

    The same xxh3 of the same bytes, hashed from slices of one memoryview: no array slice and
    byte copy per text (250k texts: 0.05 s instead of 0.19 s)."""
    buf = memoryview(np.ascontiguousarray(cps, dtype=np.uint32)).cast("B")
    ends = (np.cumsum(lens) * 4).tolist()
    h = xxhash.xxh3_64_intdigest
    return np.fromiter((h(buf[s:e]) for s, e in zip([0, *ends], ends)), np.uint64, len(ends))


def codepoints(canon: str) -> np.ndarray:
    return np.frombuffer(canon.encode("utf-32-le"), dtype=np.uint32)


def _mix64(h: np.ndarray, tmp: np.ndarray | None = None) -> np.ndarray:
    """splitmix64 finaliser: spreads the polynomial hash over all 64 bits (in place; ``tmp``:
    a scratch array of h's shape, to avoid allocating one per step)."""
    t = np.empty_like(h) if tmp is None else tmp
    with np.errstate(over="ignore"):
        for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB), (31, None)):
            np.right_shift(h, np.uint64(shift), out=t)
            np.bitwise_xor(h, t, out=h)
            if mult:
                np.multiply(h, np.uint64(mult), out=h)
    return h


def window_hashes(cps: np.ndarray, n: int, block: int = 1 << 15) -> np.ndarray:
    """uint64 hash of every length-n window of a uint32 code-point array (len(cps) - n + 1 values).

    Works on a concatenation of many documents too; the caller masks windows that cross a
    document boundary. n multiply-adds and a splitmix64 finish per window, run block by block
    in place so that every pass stays in the CPU cache: ~2x faster than whole-array passes.
    """
    m = len(cps) - n + 1
    if m <= 0:
        return np.empty(0, dtype=np.uint64)
    out = np.empty(m, dtype=np.uint64)
    c = np.empty(min(block, m) + n - 1, dtype=np.uint64)
    tmp = np.empty(min(block, m), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for s in range(0, m, block):
            size = min(block, m - s)
            cb, h, t = c[: size + n - 1], out[s : s + size], tmp[:size]
            cb[:] = cps[s : s + size + n - 1]
            h[:] = cb[:size]
            for k in range(1, n):
                np.multiply(h, GOLDEN, out=h)
                np.add(h, cb[k : k + size], out=h)
            _mix64(h, t)
    return out


def text_window_hashes(cps: np.ndarray, lens: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the character n-grams of many texts in one numpy pass.

    ``cps``/``lens``: concatenated code points and length per text (``canonical_batch``).
    Returns (hashes, windows per text): windows that run into the next text are dropped; a
    text shorter than n (but not empty) counts as one n-gram, padded with U+0000.
    """
    lens = np.asarray(lens, dtype=np.int64)
    if ((lens > 0) & (lens < n)).any():
        plens = np.where(lens > 0, np.maximum(lens, n), 0)
        doc = np.repeat(np.arange(len(lens)), lens)
        pos = np.arange(len(cps)) - np.repeat(np.cumsum(lens) - lens, lens)
        padded = np.zeros(int(plens.sum()), dtype=np.uint32)
        padded[(np.cumsum(plens) - plens)[doc] + pos] = cps
        cps, lens = padded, plens
    h = window_hashes(cps, n)
    counts = np.maximum(lens - n + 1, 0)
    if len(h):
        # windows starting in a text's last n-1 positions run into the next text
        tail = (np.cumsum(lens)[:, None] - np.arange(1, n)[None, :]).ravel()
        tail = tail[(tail >= 0) & (tail < len(h))]
        if len(tail):
            ok = np.ones(len(h), dtype=bool)
            ok[tail] = False
            h = h[ok]
    return h, counts


def ngram_sets(texts_cps: list[np.ndarray], n: int) -> list[np.ndarray]:
    """Sorted unique uint32 n-gram hashes (the high half of ``window_hashes``) of each text's
    canonical code points, hashed in one pass. 32 bits are plenty for an exact Jaccard: two
    10,000-character texts share a spurious hash with probability ~2e-2, i.e. 1 n-gram in 10^4."""
    if not texts_cps:
        return []
    h32, offs, _ = _hashes32(texts_cps, n)
    return [np.unique(h32[offs[i] : offs[i + 1]]) for i in range(len(texts_cps))]


def _hashes32(texts_cps: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every text's n-gram hashes (high 32 bits) in one array, each text's offsets into it, and
    the texts' lengths: one hashing pass for a batch of texts."""
    lens = np.fromiter((len(c) for c in texts_cps), dtype=np.int64, count=len(texts_cps))
    h, counts = text_window_hashes(np.concatenate(texts_cps), lens, n)
    return (h >> np.uint64(32)).astype(np.uint32), np.concatenate([[0], np.cumsum(counts)]), lens


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique hash arrays (exact, not estimated)."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


class Shingles(NamedTuple):
    """A canonical text's character n-grams as the verification reads them: ``grams``, the sorted
    unique uint32 hashes (the Jaccard's set, as ``ngram_sets``); ``inv``, for each position the
    index in ``grams`` of the n-gram starting there (``max(length - n + 1, 1)`` positions, none for
    an empty text: which characters a shared n-gram covers); ``length``, the canonical characters."""

    grams: np.ndarray
    inv: np.ndarray
    length: int


def ngram_shingles(texts_cps: list[np.ndarray], n: int) -> list[Shingles]:
    """``Shingles`` of each text's canonical code points, hashed in one pass (``ngram_sets`` plus
    the position of each n-gram)."""
    if not texts_cps:
        return []
    lens = np.fromiter(map(len, texts_cps), dtype=np.int64, count=len(texts_cps))
    sh = shingle_batch(np.concatenate(texts_cps), lens, n)
    return [sh.text(t) for t in range(len(lens))]


class ShingleBatch(NamedTuple):
    """The ``Shingles`` of many texts in flat arrays, what ``overlaps`` reads: text t's ``grams``
    are ``grams[gram_off[t]:gram_off[t + 1]]``, its ``inv`` ``inv[pos_off[t]:pos_off[t + 1]]``
    (indices into its own grams, as ``Shingles.inv``), its ``length`` ``length[t]``. 8 bytes per
    character and 24 per text, against ~200 more per text for a list of ``Shingles``."""

    grams: np.ndarray  # uint32
    gram_off: np.ndarray  # int64, texts + 1
    inv: np.ndarray  # int32
    pos_off: np.ndarray  # int64, texts + 1
    length: np.ndarray  # int64

    @property
    def texts(self) -> int:
        return len(self.length)

    def text(self, t: int) -> Shingles:
        g0, g1, p0, p1 = self.gram_off[t], self.gram_off[t + 1], self.pos_off[t], self.pos_off[t + 1]
        return Shingles(self.grams[g0:g1], self.inv[p0:p1], int(self.length[t]))

    @staticmethod
    def of(shingles: list[Shingles]) -> ShingleBatch:
        """The batch of some ``Shingles``, text k = ``shingles[k]``."""
        grams, inv = [s.grams for s in shingles], [s.inv for s in shingles]
        return ShingleBatch(concat_arrays(grams, np.uint32), _offsets(list(map(len, grams))),
                            concat_arrays(inv, np.int32), _offsets(list(map(len, inv))),
                            np.array([s.length for s in shingles], dtype=np.int64))

    @staticmethod
    def concat(batches: list[ShingleBatch]) -> ShingleBatch:
        """One batch of the texts of ``batches``, in order."""
        if len(batches) == 1:
            return batches[0]
        gram_lens = [np.diff(b.gram_off) for b in batches]
        pos_lens = [np.diff(b.pos_off) for b in batches]
        return ShingleBatch(concat_arrays([b.grams for b in batches], np.uint32),
                            _offsets(concat_arrays(gram_lens, np.int64)),
                            concat_arrays([b.inv for b in batches], np.int32),
                            _offsets(concat_arrays(pos_lens, np.int64)),
                            concat_arrays([b.length for b in batches], np.int64))


def concat_arrays(arrays: list[np.ndarray], dtype) -> np.ndarray:
    """``arrays`` end to end as ``dtype`` (an empty array of it for none)."""
    return np.concatenate(arrays).astype(dtype, copy=False) if len(arrays) else np.zeros(0, dtype)


def _offsets(counts) -> np.ndarray:
    """[0, counts[0], counts[0] + counts[1], ...]: where each of consecutive ranges starts, and the end."""
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def shingle_batch(cps: np.ndarray, lens: np.ndarray, n: int) -> ShingleBatch:
    """The ``ShingleBatch`` of texts given as concatenated canonical code points and lengths, in
    one hashing pass and one sort: the same ``Shingles`` as ``np.unique(return_inverse=True)``
    per text, ~4x faster on short texts (23,600 texts of ~120 characters: 0.15 s, not 0.6 s: the
    per-call overhead of ``np.unique`` was most of it). Temporaries: ~40 bytes per character,
    so callers pass texts in blocks (``text_blocks``)."""
    lens = np.asarray(lens, dtype=np.int64)
    h, counts = text_window_hashes(cps, lens, n)
    text = np.repeat(np.arange(len(lens), dtype=np.uint64), counts)
    # (text, n-gram hash) keys; the stable sort is a timsort, which finds the keys already
    # ordered by text and only sorts within each text (2x faster than the default quicksort)
    key = (text << np.uint64(32)) | (h >> np.uint64(32))
    order = np.argsort(key, kind="stable")
    skey = key[order]
    new = np.ones(len(skey), dtype=bool)
    np.not_equal(skey[1:], skey[:-1], out=new[1:])
    uniq = skey[new]
    gram_off = np.searchsorted(uniq >> np.uint64(32), np.arange(len(lens) + 1, dtype=np.uint64))
    inv = np.empty(len(key), dtype=np.int64)
    inv[order] = np.cumsum(new) - 1
    inv -= gram_off[:-1].repeat(counts)
    return ShingleBatch(uniq.astype(np.uint32), gram_off.astype(np.int64), inv.astype(np.int32), _offsets(counts),
                        lens)


def text_blocks(lens: np.ndarray, chars: int) -> list[tuple[int, int]]:
    """Consecutive ranges [t0, t1) of texts of about ``chars`` characters each (a longer text
    alone), to bound the temporaries of a batch pass."""
    starts = np.cumsum(lens) - lens
    cuts = np.flatnonzero(np.diff(starts // max(chars, 1))) + 1
    bounds = [0, *cuts.tolist(), len(lens)]
    return [(t0, t1) for t0, t1 in zip(bounds[:-1], bounds[1:]) if t1 > t0]


def overlap(a: Shingles, b: Shingles, n: int) -> tuple[float, tuple[int, int], tuple[int, int]]:
    """(Jaccard of the two n-gram sets, ``uncovered`` of a against b, of b against a): ``overlaps``
    of one pair."""
    j, ua, ra, ub, rb = overlaps(ShingleBatch.of([a, b]), np.array([0]), np.array([1]), n)
    return float(j[0]), (int(ua[0]), int(ra[0])), (int(ub[0]), int(rb[0]))


def uncovered(a: Shingles, b: Shingles, n: int) -> tuple[int, int]:
    """(characters of ``a`` in no n-gram that ``b`` has, the longest run of such characters).

    A character is covered when one of the (up to n) n-grams of ``a`` that contain it is in ``b``.
    So a substituted or inserted character uncovers itself alone (its neighbours are covered by
    the n-grams on their other side) and a deletion nothing, while a passage of ``a`` that ``b``
    lacks is uncovered whole: the uncovered characters are what differs, edits or passages, and
    the longest run tells them apart (two edits closer than n characters uncover the gap too)."""
    return overlap(a, b, n)[1]


def overlaps(sh: ShingleBatch, a: np.ndarray, b: np.ndarray, n: int, coverage: bool = True) -> tuple[np.ndarray, ...]:
    """For each pair (text ``a[k]``, text ``b[k]``) of ``sh``: the Jaccard of the two n-gram sets
    and ``uncovered`` of a against b and of b against a, as five arrays (j, uncovered a, longest
    run a, uncovered b, longest run b); with ``coverage=False`` the Jaccards only.

    The one definition behind ``overlap`` and ``core.verify_pairs``, computed pair by pair in
    compiled code (``pair_overlaps``): one merge of the two sorted gram lists and one walk of each
    text's positions. In numpy, many pairs per pass, it took 3x the time (421k candidate pairs of
    120k QA records: 2.2 s against 0.7 s; per pair in numpy, ~15 calls each, far more)."""
    from curation.dedup.pair_overlaps import pair_overlaps  # numba: loaded when used

    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    out = pair_overlaps(sh.grams, sh.gram_off, sh.inv, sh.pos_off, sh.length, a, b, n, coverage)
    return out if coverage else out[:1]
