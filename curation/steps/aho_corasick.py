"""pyahocorasick's ``iter_long`` compiled (numba), for many texts at once: the medical-term
coverage of a whole chunk of documents in one call.

Why: the lexicon-density filter walked ``Automaton.iter_long`` from Python, one match at a time,
~8 us a QA record (2 s of a 250k-record build). The walk itself is cheap; the Python around each
match was not.

Same matches, not merely similar ones: ``iter_long`` is not textbook leftmost-longest matching
(after a dead end with no match it follows failure links, and it remembers at most one node whose
failure link is a word, to fall back to), so ``_covered`` transcribes its loop statement by
statement (pyahocorasick 2.x, ``src/Automaton_iter_long.c``) over the same trie: the same words,
with their values (the matcher's zero-length entries included), and the standard failure links
``make_automaton`` builds. The test compares the two on the real corpus, match for match.

The trie is a hash table of edges, ``(node << 21 | code point) -> child`` (code points < 2^21),
built with its failure links in compiled code (~0.1 s for the 128k-term lexicon); the walk reads
it packed, each edge's key and child in one 8-byte slot (``_pack``).
"""

from __future__ import annotations

import numpy as np

from curation.compiled import njit, table_bits
from curation.dedup.canonical import GOLDEN

_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)


class CompiledAutomaton:
    """The trie of ``words`` (``(word, value)`` pairs, as ``Automaton.items()`` lists them) with
    its failure links; ``covered`` walks texts as ``iter_long`` does."""

    def __init__(self, words):
        words = [(w, int(v)) for w, v in words if w]
        flat = "".join(w for w, _ in words)
        cps = np.frombuffer(flat.encode("utf-32-le"), dtype=np.uint32)
        lens = np.fromiter((len(w) for w, _ in words), dtype=np.int64, count=len(words))
        values = np.fromiter((v for _, v in words), dtype=np.int64, count=len(words))
        bits = table_bits(len(cps) + 1)  # edges <= characters
        keys, kids, shift, mask, root, eow, out, fail = _build(cps, np.cumsum(lens) - lens, lens, values, bits)
        if len(eow) >= 1 << KID_BITS:  # pragma: no cover - a trie of 4M nodes (128k terms: ~0.4M)
            raise ValueError(f"lexicon too large for the compiled automaton: {len(eow)} trie nodes")
        self.tables = (_pack(keys, kids), shift, mask, root, eow, out, fail)

    def save(self, path) -> None:
        """The tables into ``path`` (an uncompressed ``.npz``), whole or not at all."""
        from cumed.atomic import replacing

        packed, shift, mask, root, eow, out, fail = self.tables
        with replacing(path, "wb") as f:
            np.savez(f, packed=packed, root=root, eow=eow, out=out, fail=fail,
                     ints=np.array([int(shift), int(mask)], dtype=np.int64))

    @classmethod
    def load(cls, path) -> CompiledAutomaton:
        """The automaton ``save`` wrote (~0.03 s, against ~0.5 s to build it and its source)."""
        with np.load(path, allow_pickle=False) as z:
            shift, mask = (int(v) for v in z["ints"])
            self = cls.__new__(cls)
            self.tables = (z["packed"], shift, mask, z["root"], z["eow"], z["out"], z["fail"])
        return self

    def covered(self, c: np.ndarray, starts: np.ndarray, ends: np.ndarray, need: np.ndarray) -> np.ndarray:
        """Per text ``c[starts[i]:ends[i]]``: the sum of the values ``iter_long`` yields, stopping
        once it reaches ``need[i]`` (the filter's early exit: what it decides is the same)."""
        return _covered(c.astype(np.uint32, copy=False), starts.astype(np.int64, copy=False),
                        ends.astype(np.int64, copy=False), need.astype(np.float64, copy=False), *self.tables)


# A walk's edge lookups, in one array: (node << 21 | code point) << KID_BITS | child, so that a
# probe reads one 8-byte slot, not a key and then a child in two 16 MB arrays (two cache misses).
KID_BITS = 22


@njit(cache=True, nogil=True)
def _pack(keys, kids):  # pragma: no cover - compiled
    packed = np.full(len(keys), _EMPTY, dtype=np.uint64)
    for h in range(len(keys)):
        if keys[h] != _EMPTY:
            packed[h] = (keys[h] << np.uint64(KID_BITS)) | np.uint64(kids[h])
    return packed


@njit(cache=True, nogil=True)
def _edge(packed, shift, mask, node, ch):  # pragma: no cover - compiled
    """``_child`` on the packed table."""
    k = (np.uint64(node) << np.uint64(21)) | np.uint64(ch)
    h = np.int64((k * GOLDEN) >> shift)
    while packed[h] != _EMPTY:
        if packed[h] >> np.uint64(KID_BITS) == k:
            return np.int64(packed[h] & np.uint64((1 << KID_BITS) - 1))
        h = (h + 1) & mask
    return -1


@njit(cache=True, nogil=True)
def _child(keys, kids, shift, mask, node, ch):  # pragma: no cover - compiled
    k = (np.uint64(node) << np.uint64(21)) | np.uint64(ch)
    h = np.int64((k * GOLDEN) >> shift)
    while keys[h] != _EMPTY:
        if keys[h] == k:
            return kids[h]
        h = (h + 1) & mask
    return -1


@njit(cache=True)
def _build(cps, starts, lens, values, bits):  # pragma: no cover - compiled
    size = 1 << bits
    mask = size - 1
    shift = np.uint64(64 - bits)
    keys = np.full(size, _EMPTY, dtype=np.uint64)
    kids = np.full(size, -1, dtype=np.int64)
    n_max = len(cps) + 1
    parent = np.full(n_max, -1, dtype=np.int64)
    via = np.zeros(n_max, dtype=np.int64)  # the code point of the edge into the node
    depth = np.zeros(n_max, dtype=np.int64)
    eow = np.zeros(n_max, dtype=np.bool_)
    out = np.zeros(n_max, dtype=np.int64)
    nodes = 1  # node 0 is the root
    for w in range(len(starts)):
        node = 0
        for i in range(starts[w], starts[w] + lens[w]):
            ch = cps[i]
            nxt = _child(keys, kids, shift, mask, node, ch)
            if nxt < 0:
                nxt = nodes
                nodes += 1
                k = (np.uint64(node) << np.uint64(21)) | np.uint64(ch)
                h = np.int64((k * GOLDEN) >> shift)
                while keys[h] != _EMPTY:
                    h = (h + 1) & mask
                keys[h], kids[h] = k, nxt
                parent[nxt], via[nxt], depth[nxt] = node, ch, depth[node] + 1
            node = nxt
        eow[node] = True
        out[node] = values[w]  # a word added again keeps its last value, as add_word does
    # failure links breadth first: the root's is none (-1), its children's the root
    fail = np.full(nodes, -1, dtype=np.int64)
    for v in np.argsort(depth[:nodes], kind="mergesort"):
        u = parent[v]
        if v == 0:
            continue
        if u == 0:
            fail[v] = 0
            continue
        f = fail[u]
        while f >= 0 and _child(keys, kids, shift, mask, f, via[v]) < 0:
            f = fail[f]
        fail[v] = 0 if f < 0 else _child(keys, kids, shift, mask, f, via[v])
    # the root's edges as a table by code point: most steps of a walk start at the root, and a
    # probe into the 32 MB edge table is a cache miss (2.6 -> 1.0 us a QA record)
    root = np.full(0x110000, -1, dtype=np.int32)
    for h in range(size):
        if keys[h] != _EMPTY and (keys[h] >> np.uint64(21)) == 0:
            root[np.int64(keys[h] & np.uint64(0x1FFFFF))] = kids[h]
    return keys, kids, shift, mask, root, eow[:nodes].copy(), out[:nodes].copy(), fail


@njit(cache=True, nogil=True)
def _covered(c, starts, ends, need, packed, shift, mask, root, eow, out, fail):  # pragma: no cover - compiled
    res = np.zeros(len(starts), dtype=np.int64)
    for t in range(len(starts)):
        s, end = starts[t], ends[t] - starts[t]
        total = 0
        state, index = 0, -1
        last_node, last_index = -1, -1
        while True:  # one ``automaton_search_iter_long_next`` call per turn
            fail_node, fail_index, fail_flag = -1, -1, False
            index += 1
            while index < end:
                if fail_flag:  # failover: start from the fail node instead of next
                    nxt = fail[fail_node]
                    index = fail_index
                    fail_node, fail_index, fail_flag = -1, -1, False
                elif state == 0:
                    nxt = root[c[s + index]]
                else:
                    nxt = _edge(packed, shift, mask, state, c[s + index])
                if nxt >= 0:
                    if eow[nxt]:
                        last_node, last_index = nxt, index
                    elif last_node < 0 and fail_node < 0 and fail[nxt] > 0 and eow[fail[nxt]]:
                        fail_node, fail_index = nxt, index
                    state = nxt
                    index += 1
                else:
                    if last_node >= 0:
                        break
                    if fail_node >= 0:
                        fail_flag = True
                        continue
                    while True:
                        state = fail[state]
                        if state < 0:
                            state = 0
                            index += 1
                            break
                        if (root[c[s + index]] if state == 0 else _edge(packed, shift, mask, state, c[s + index])) >= 0:
                            break
            if last_node < 0:
                break  # StopIteration
            # return_output: a match ending at last_index; start over from the root after it
            total += out[last_node]
            if total >= need[t]:
                break
            state, index = 0, last_index
            last_node, last_index = -1, -1
        res[t] = total
    return res
