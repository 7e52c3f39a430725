"""Which 20-character spans of a chunk's texts are keys of the decontamination index, compiled
(numba): one pass per text, each span's hash rolled from the previous one, tested against a
bitmap of the keys (one cached memory access: ~97 % of spans stop there), then looked up in a
hash table of the keys.

Why: in numpy the same lookup was five passes over the whole chunk (the n multiply-adds per span
of ``canonical.window_hashes``, the mixing, a gather from a bitmap of the keys' top bits, a
binary search of the ~2.5 % of spans the bitmap let through, a ``searchsorted`` to find each
span's text): ~4 us a QA record. Compiled, the binary search of the bitmap's survivors was
still ~2 us each (20 dependent cache misses into 0.84 M keys), and a hash table alone (no bitmap)
cost a cache miss for every span (~100 ns); bitmap, then table: ~10 ns a span.

The hashes are bit for bit ``canonical.window_hashes``: the polynomial ``c0*P^(n-1) + ... + c(n-1)``
modulo 2^64 rolls exactly (subtracting the leaving character's term and multiplying by P is the
same ring arithmetic), then the same splitmix64 finaliser. Spans that would run into the next
text are never formed, as the numpy path masked them.
"""

from __future__ import annotations

import numpy as np

from curation.compiled import njit, splitmix64, table_bits
from curation.dedup.canonical import GOLDEN


# Characters per kernel call: its span hashes and texts (24 bytes a span, 1.5 MB) stay in the CPU
# cache from the loop that writes them to the loops that read them. With 1M characters a call
# (24 MB) 100k QA records took 0.118 s, with 64k 0.075 s (the same spans found).
BLOCK = 1 << 16
BITMAP_BITS = 26  # 8 MB: stays in the CPU cache, where a table of the keys themselves (24 MB) does not


def key_table(keys: np.ndarray, bits: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What ``key_spans`` looks spans up in, for the sorted uint64 ``keys`` (already mixed hashes,
    so their top bits are uniform): a bitmap of the keys' top ``BITMAP_BITS`` bits, which ~97 %
    of spans fail at one cached memory access, and an open-addressing table of the keys (slot:
    the top ``bits``; key per slot, its position in ``keys`` or -1), at most half full, for the
    rest. 0.84 M keys: 8 + 24 MB per process, ~0.1 s to build."""
    if bits is None:
        bits = table_bits(len(keys))
    return _key_table(np.asarray(keys), bits, BITMAP_BITS)


def key_spans(cps: np.ndarray, lens: np.ndarray, n: int, table: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(text index, position in the keys) of every length-``n`` span of the texts (``cps`` laid
    end to end, ``lens`` each) whose hash is a key of ``table`` (``key_table``), in text order."""
    cps = np.ascontiguousarray(cps, dtype=np.uint32)
    lens = np.asarray(lens, dtype=np.int64)
    shifts = np.uint64(64 - (len(table[1]).bit_length() - 1)), np.uint64(64 - BITMAP_BITS)
    # texts in groups of <= BLOCK characters: the kernel holds 24 bytes per span of a call (a chunk
    # of 512 papers of 30k characters would be 360 MB at once)
    ends = np.cumsum(lens)
    cuts = [0, *(np.flatnonzero(np.diff(ends // BLOCK)) + 1).tolist(), len(lens)]
    docs, where = [], []
    for a, b in zip(cuts[:-1], cuts[1:]):
        if a == b:
            continue
        s0 = int(ends[a] - lens[a])
        d, w = _key_spans(cps[s0:int(ends[b - 1])], lens[a:b], int(n), *table, *shifts)
        docs.append(d + a)
        where.append(w)
    if len(docs) == 1:
        return docs[0], where[0]
    return (np.concatenate(docs), np.concatenate(where)) if docs else (np.empty(0, np.int64), np.empty(0, np.int64))


@njit(cache=True)
def _key_table(keys, bits, bitmap_bits):  # pragma: no cover - compiled
    bitmap = np.zeros(1 << (bitmap_bits - 3), dtype=np.uint8)
    top_shift = np.uint64(64 - bitmap_bits)
    size = 1 << bits
    slot_key = np.zeros(size, dtype=np.uint64)
    slot_pos = np.full(size, -1, dtype=np.int32)
    shift = np.uint64(64 - bits)
    for i in range(len(keys)):
        top = keys[i] >> top_shift
        bitmap[np.int64(top >> np.uint64(3))] |= np.uint8(1) << np.uint8(top & np.uint64(7))
        if i and keys[i] == keys[i - 1]:
            continue  # the first of equal keys, as a binary search finds it
        h = np.int64(keys[i] >> shift)
        while slot_pos[h] >= 0:
            h = (h + 1) & (size - 1)
        slot_key[h], slot_pos[h] = keys[i], i
    return bitmap, slot_key, slot_pos


@njit(cache=True, nogil=True)
def _key_spans(cps, lens, n, bitmap, slot_key, slot_pos, shift, top_shift):  # pragma: no cover - compiled
    # Three tight loops, not one: the bitmap test of every span as a loop of independent loads
    # (the CPU keeps many cache misses in flight; the chunk's other work evicts the bitmap), then
    # the table only for the spans that passed. Fused, each test waited for its load: 2x slower.
    total = 0
    for d in range(len(lens)):
        if lens[d] >= n:
            total += lens[d] - n + 1
    hashes = np.empty(total, dtype=np.uint64)
    text = np.empty(total, dtype=np.int64)
    lead = np.uint64(1)  # P^(n-1): the weight of the character leaving the window
    for _ in range(n - 1):
        lead *= GOLDEN
    j, start = 0, 0
    for d in range(len(lens)):
        L = lens[d]
        if L >= n:
            h = np.uint64(0)
            for k in range(n):
                h = h * GOLDEN + np.uint64(cps[start + k])
            for i in range(L - n + 1):
                if i:
                    h = (h - np.uint64(cps[start + i - 1]) * lead) * GOLDEN + np.uint64(cps[start + i + n - 1])
                hashes[j], text[j] = splitmix64(h), d
                j += 1
        start += L
    passed = np.empty(total, dtype=np.int64)
    c = 0
    for j in range(total):
        top = hashes[j] >> top_shift
        passed[c] = j
        c += (bitmap[np.int64(top >> np.uint64(3))] >> np.uint8(top & np.uint64(7))) & np.uint8(1)
    docs = np.empty(c, dtype=np.int64)
    where = np.empty(c, dtype=np.int64)
    found = 0
    size = len(slot_key)
    for q in range(c):
        m = hashes[passed[q]]
        s = np.int64(m >> shift)
        while slot_pos[s] >= 0:
            if slot_key[s] == m:
                docs[found], where[found] = text[passed[q]], slot_pos[s]
                found += 1
                break
            s = (s + 1) & (size - 1)
    return docs[:found].copy(), where[:found].copy()
