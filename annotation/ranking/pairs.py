"""``rankings`` -> ``preferences``: (chosen, rejected) pairs, margins, prompt-grouped splits, mixing.

Pairs
    ``adjacent`` (the paper): every response of tie group k against every response of group k+1;
    ``all``: every response against every lower-ranked one. Responses in one tie group give no
    pair. ``chosen`` is always the better-ranked response; ``chosen_rank``/``rejected_rank`` are
    1-based group ranks.
Margin
    ``rank``: rank distance (rejected_rank - chosen_rank). ``score``/``auto``: the difference of the
    two responses' total scores (``scores`` column of the rankings row) where both have one and
    the difference is positive (the ranking agrees with the scores), else the rank distance.
    ``margin_kind`` says which one each row got.
Several annotators
    Rows of one prompt (one per annotator) are merged by mean rank (``validate.consensus``).
Splits
    By prompt: near-duplicate prompts are clustered with ``find_duplicates`` (``cluster_threshold``,
    default 0.6) and a cluster never straddles two splits. Clusters are visited in the order of a
    seeded sha1 of their id; test and validation are filled up to exactly round(N x fraction)
    prompts (a cluster that does not fit is passed over), everything else is train. 5,000 prompts
    at 90/5/5 give 4,500/250/250. Deterministic for a given set of prompts and seed.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict

import pyarrow as pa

from cumed.errors import CumedError

from annotation.ranking.validate import Ranking, consensus

PAIR_MODES = ("adjacent", "all")
MARGIN_MODES = ("auto", "rank", "score")
EXTRA = [("chosen_id", pa.string()), ("rejected_id", pa.string()), ("chosen_model", pa.string()),
         ("rejected_model", pa.string()), ("margin_kind", pa.string()), ("origin", pa.string())]
SCHEMA = pa.schema([("prompt_id", pa.string()), ("prompt", pa.string()), ("chosen", pa.string()),
                    ("rejected", pa.string()), ("chosen_rank", pa.int64()), ("rejected_rank", pa.int64()),
                    ("margin", pa.float64()), ("split", pa.string())] + EXTRA)


def ranking_pairs(groups: list[list[str]], mode: str = "adjacent") -> list[tuple[str, str, int, int]]:
    """(chosen id, rejected id, chosen rank, rejected rank) for one ranking of tie groups."""
    if mode not in PAIR_MODES:
        raise CumedError(f"unknown pair mode {mode!r}; use adjacent or all")
    out = []
    for i, better in enumerate(groups):
        lower = groups[i + 1:i + 2] if mode == "adjacent" else groups[i + 1:]
        for off, worse in enumerate(lower, start=1):
            for c in better:
                for r in worse:
                    out.append((c, r, i + 1, i + 1 + off))
    return out


def _hash01(seed: str, key: str) -> float:
    return int.from_bytes(hashlib.sha1(f"{seed}\x1f{key}".encode()).digest()[:8], "big") / 2**64


def prompt_clusters(items: list[tuple[str, str]], threshold: float | None = 0.6) -> dict[str, str]:
    """{prompt_id: cluster id}; ``threshold=None`` puts every prompt in its own cluster."""
    if threshold is None or len(items) < 2:
        return {i: i for i, _ in items}
    from curation.sft.splits import clusters

    return clusters(items, threshold=threshold)


def assign_splits(items: list[tuple[str, str]], validation: float = 0.05, test: float = 0.05,
                  seed: str = "cumed-rm", cluster_threshold: float | None = 0.6) -> tuple[dict[str, str], dict]:
    """({prompt_id: split}, info) for (prompt_id, prompt text) items, one entry per prompt."""
    if validation < 0 or test < 0 or validation + test >= 1:
        raise CumedError(f"split fractions validation={validation}, test={test} must be >= 0 and sum to < 1")
    cl = prompt_clusters(items, cluster_threshold)
    members: dict[str, list[str]] = defaultdict(list)
    for pid, c in cl.items():
        members[c].append(pid)
    n = len(cl)
    target = {"test": round(n * test), "validation": round(n * validation)}
    have = {"test": 0, "validation": 0}
    out = {}
    for c in sorted(members, key=lambda c: (_hash01(seed, c), c)):
        size = len(members[c])
        split = "train"
        for s in ("test", "validation"):
            if have[s] + size <= target[s]:
                split = s
                have[s] += size
                break
        for pid in members[c]:
            out[pid] = split
    multi = [len(v) for v in members.values() if len(v) > 1]
    return out, {"prompts": n, "clusters": len(members), "multi_prompt_clusters": len(multi),
                 "prompts_in_multi_clusters": sum(multi), "cluster_threshold": cluster_threshold, "seed": seed}


def _scores(raw) -> dict:
    if not raw:
        return {}
    d = json.loads(raw) if isinstance(raw, str) else raw
    return {k: (v.get("total") if isinstance(v, dict) else v) for k, v in d.items()}


def build_pairs(rankings: pa.Table, mode: str = "adjacent", margin: str = "auto", validation: float = 0.05,
                test: float = 0.05, seed: str = "cumed-rm", cluster_threshold: float | None = 0.6,
                origin: str = "") -> tuple[pa.Table, dict]:
    """Preferences table (``SCHEMA``) and stats from a rankings table."""
    if margin not in MARGIN_MODES:
        raise CumedError(f"unknown margin mode {margin!r}; use auto, rank or score")
    cols = ["prompt_id", "prompt", "responses", "ranking", "annotator"]
    has_scores = "scores" in rankings.column_names
    data = {c: rankings.column(c).to_pylist() for c in cols + (["scores"] if has_scores else [])}
    per_prompt: dict[str, list[int]] = defaultdict(list)
    for i, pid in enumerate(data["prompt_id"]):
        per_prompt[pid].append(i)
    split_of, split_info = assign_splits([(pid, data["prompt"][rows[0]]) for pid, rows in per_prompt.items()],
                                         validation, test, seed, cluster_threshold)
    out = {f.name: [] for f in SCHEMA}
    ties = merged = 0
    for pid in sorted(per_prompt, key=lambda p: (split_of[p] != "train", p)):
        rows = per_prompt[pid]
        r0 = rows[0]
        if len(rows) > 1:
            merged += 1
            groups = consensus([Ranking(pid, None, i, str(data["annotator"][i]), data["ranking"][i]) for i in rows])
        else:
            groups = data["ranking"][r0]
        ties += sum(len(g) > 1 for g in groups)
        resp = {r["response_id"]: r for r in data["responses"][r0]}
        sc = _scores(data["scores"][r0]) if has_scores else {}
        prompt, split = data["prompt"][r0], split_of[pid]
        for c, r, cr, rr in ranking_pairs(groups, mode):
            m, kind = float(rr - cr), "rank"
            if margin != "rank" and sc.get(c) is not None and sc.get(r) is not None and sc[c] - sc[r] > 0:
                m, kind = float(sc[c] - sc[r]), "score"
            out["prompt_id"].append(pid)
            out["prompt"].append(prompt)
            out["chosen"].append(resp[c]["text"])
            out["rejected"].append(resp[r]["text"])
            out["chosen_rank"].append(cr)
            out["rejected_rank"].append(rr)
            out["margin"].append(m)
            out["split"].append(split)
            out["chosen_id"].append(c)
            out["rejected_id"].append(r)
            out["chosen_model"].append(resp[c]["model"])
            out["rejected_model"].append(resp[r]["model"])
            out["margin_kind"].append(kind)
            out["origin"].append(origin)
    table = pa.table(out, schema=SCHEMA)
    by_split = defaultdict(lambda: {"prompts": 0, "pairs": 0})
    for pid, s in split_of.items():
        by_split[s]["prompts"] += 1
    for s in out["split"]:
        by_split[s]["pairs"] += 1
    stats = {"pairs": table.num_rows, "prompts": len(per_prompt), "mode": mode, "margin": margin,
             "tie_groups": ties, "prompts_merged_from_annotators": merged,
             "splits": {s: by_split[s] for s in ("train", "validation", "test") if s in by_split},
             "split_info": split_info,
             "margin_kinds": {k: out["margin_kind"].count(k) for k in ("rank", "score")}}
    return table, stats


def mix_general(domain: pa.Table, general: pa.Table, ratio: float, seed: str = "cumed-rm",
                origin: str = "general") -> tuple[pa.Table, dict]:
    """Add general-domain preference rows: ``ratio`` x the domain rows of each split, sampled
    deterministically from the general rows of the same split (all general rows if it has no
    ``split`` column, then split like the domain data: its train rows only feed train)."""
    if ratio < 0:
        raise CumedError(f"mixing ratio {ratio} must be >= 0 (general rows per domain row)")
    g = general.to_pylist()
    for row in g:
        row.setdefault("split", "train")
    counts = defaultdict(int)
    for s in domain.column("split").to_pylist():
        counts[s] += 1
    added = {}
    rows = []
    for split, n in sorted(counts.items()):
        pool = [r for r in g if (r.get("split") or "train") == split]
        want = min(len(pool), round(n * ratio))
        rng = random.Random(f"{seed}\x1fmix\x1f{split}")
        picked = rng.sample(pool, want) if want < len(pool) else pool
        for r in picked:
            rows.append({f.name: r.get(f.name) for f in SCHEMA} | {
                "split": split, "origin": origin, "margin_kind": r.get("margin_kind") or "general",
                "margin": float(r.get("margin") if r.get("margin") is not None else 1.0)})
        added[split] = {"requested": round(n * ratio), "added": len(picked), "available": len(pool)}
    mixed = pa.concat_tables([domain, pa.Table.from_pylist(rows, schema=SCHEMA)]) if rows else domain
    return mixed, {"ratio": ratio, "origin": origin, "per_split": added}
