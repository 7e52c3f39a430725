"""Canonical form of a text for deduplication and decontamination, and its character n-grams.

Two copies of a document are "the same" for dedup if they differ only in things a reader does
not care about: script (Traditional vs Simplified), width/compatibility forms, punctuation and
whitespace. ``canonical(text)`` maps all of those away:

1. OpenCC ``t2s`` (Traditional -> Simplified), applied only when the text contains at least one
   character that t2s would change. The check is one compiled regex (~600 MB/s); t2s itself
   runs ~150 MB/s on this box, so most Simplified text skips it;
2. NFKC: full-width ``ＡＢＣ１２３`` -> ``ABC123``, compatibility ideographs -> unified ones;
3. casefold, then drop every character that is not a letter or digit (``\\W`` and ``_``):
   punctuation of all widths, whitespace, line breaks, emoji.

Steps 2-3 run as one table lookup per code point in numpy (``canonical_batch``): per-string
NFKC + regex ran at ~13 MB/s on this box and was the slowest part of dedup, because nearly
every Chinese text contains full-width punctuation and so is not NFKC-normalised.

``ngram_hashes(canon, n)`` hashes every character n-gram of a canonical text with numpy (a
polynomial hash of the uint32 code points finished with splitmix64; no Python loop per n-gram).
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

import numpy as np
import xxhash

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
# a large odd 64-bit multiplier (golden ratio) for the polynomial hash of code points
_P = np.uint64(0x9E3779B97F4A7C15)


@lru_cache(maxsize=1)
def _t2s():
    try:
        import opencc
    except ImportError as e:  # pragma: no cover - opencc is a core dependency
        raise ImportError("cumed dedup needs OpenCC for Traditional->Simplified: pip install opencc") from e
    conv = opencc.OpenCC("t2s")
    # Every CJK character (BMP blocks) that t2s changes on its own: ~3,800 characters.
    chars = [chr(c) for c in range(0x3400, 0xA000)] + [chr(c) for c in range(0xF900, 0xFB00)]
    out = conv.convert("\n".join(chars)).split("\n")
    changed = "".join(a for a, b in zip(chars, out) if a != b)
    return conv, re.compile("[" + re.escape(changed) + "]")


def to_simplified(text: str) -> str:
    """OpenCC t2s, skipped (and cheap) when the text has no character that t2s would change."""
    conv, has_trad = _t2s()
    return conv.convert(text) if has_trad.search(text) else text


def _slow_canonical(text: str) -> str:
    """The definition: t2s -> NFKC -> casefold -> drop non-word characters.

    t2s runs once, on the original text: OpenCC's phrase rules depend on the neighbours (e.g.
    ``於`` stays in some contexts), so running it again after NFKC would change them."""
    text = unicodedata.normalize("NFKC", to_simplified(text))
    return _NON_WORD.sub("", text.casefold())


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray]:
    """Per-BMP-code-point tables for the vectorised path.

    ``MAP[c]``: the one character ``c`` becomes (0 = dropped); ``SLOW[c]``: ``c`` needs the
    string path, because its NFKC/casefold is several characters (``①``, ``㎡``, ``ß``), it
    composes with neighbours (combining marks, Hangul jamo), or it is a compatibility ideograph.
    """
    mapping = np.zeros(0x10000, dtype=np.uint32)
    slow = np.zeros(0x10000, dtype=bool)
    for c in range(0x10000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        ch = chr(c)
        out = _NON_WORD.sub("", unicodedata.normalize("NFKC", ch).casefold())
        if (
            len(out) > 1
            or unicodedata.category(ch).startswith("M")
            or 0x1100 <= c <= 0x11FF
            or 0x3130 <= c <= 0x318F
            or 0xA960 <= c <= 0xA97F
            or 0xD7B0 <= c <= 0xD7FF
            or 0xFFA0 <= c <= 0xFFDC
            or 0xF900 <= c <= 0xFAFF
        ):
            slow[c] = True
        elif out:
            mapping[c] = ord(out)
    return mapping, slow


def canonical_batch(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Canonical forms of many texts at once: (concatenated uint32 code points, length per text).

    Same result as ``canonical`` on each text, ~10x faster: t2s only where needed, then one
    table lookup per code point in numpy instead of NFKC + regex per string. Texts with a
    character the tables cannot handle (see ``_tables``; astral-plane characters too) take the
    string path.
    """
    mapping, slow = _tables()
    texts = [to_simplified(t) for t in texts]
    lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    cps = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
    bmp = np.minimum(cps, 0xFFFF)
    bad = cps > 0xFFFF
    bad |= slow[bmp]
    mapped = mapping[bmp]
    del bmp
    keep = mapped != 0
    doc = np.repeat(np.arange(len(texts)), lens)
    bad_docs = np.unique(doc[bad]) if bad.any() else np.empty(0, np.int64)
    if len(bad_docs):
        bad_doc = np.zeros(len(texts), dtype=bool)
        bad_doc[bad_docs] = True
        keep &= ~bad_doc[doc]
    new_lens = np.bincount(doc[keep], minlength=len(texts)).astype(np.int64)
    out = mapped[keep]
    if len(bad_docs):  # splice the string-path results in
        pieces, start = [], 0
        offs = np.concatenate([[0], np.cumsum(new_lens)])
        for d in bad_docs.tolist():
            c = codepoints(_slow_canonical(texts[d]))
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


def codepoints(canon: str) -> np.ndarray:
    return np.frombuffer(canon.encode("utf-32-le"), dtype=np.uint32)


def _mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads the polynomial hash over all 64 bits (in place)."""
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


def window_hashes(cps: np.ndarray, n: int) -> np.ndarray:
    """uint64 hash of every length-n window of a uint32 code-point array (len(cps) - n + 1 values).

    Works on a concatenation of many documents too; the caller masks windows that cross a
    document boundary. Costs n vector multiply-adds, so ~100 MB/s for n=5 on one core.
    """
    m = len(cps) - n + 1
    if m <= 0:
        return np.empty(0, dtype=np.uint64)
    c = cps.astype(np.uint64)
    h = c[:m].copy()
    with np.errstate(over="ignore"):
        for k in range(1, n):
            h *= _P
            h += c[k : k + m]
        return _mix64(h)


def ngram_hashes(canon: str | np.ndarray, n: int) -> np.ndarray:
    """Sorted unique uint64 hashes of the character n-grams of one canonical text (or its code
    points). A text shorter than n has one shingle: the whole text padded with U+0000.
    """
    cps = codepoints(canon) if isinstance(canon, str) else canon
    if len(cps) == 0:
        return np.empty(0, dtype=np.uint64)
    if len(cps) < n:
        cps = np.concatenate([cps, np.zeros(n - len(cps), dtype=np.uint32)])
    return np.unique(window_hashes(cps, n))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique hash arrays (exact, not estimated)."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)
