"""Table-1 figures of a documents build: per source and category read/kept/removed, chars,
bytes, tokens, removal reasons, per-step counters, length quantiles; and the check that every
document read was kept or removed (a lost document is a bug)."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cumed.errors import CumedError
from curation.recipe import Recipe
from curation.tokens import TokenCounter
from curation.workfolder import folder, names, read_text


def read_counts(counts_folder) -> dict[str, int]:
    """Documents read per source: the reader's per-task counts (a local folder or a URL) summed."""
    counts = folder(counts_folder)
    totals: dict[str, int] = defaultdict(int)
    for name in names(counts, "*.json"):
        for k, v in json.loads(read_text(counts, name)).items():
            totals[k] += v
    return dict(totals)


def collect_stats(recipe: Recipe, kept, removed_files, read_counts: dict, tokens: TokenCounter, work: Path) -> dict:
    """Table-1 figures per source and category, removal reasons, per-step change counts; ``kept``:
    the kept rows (``curation.build.kept.KeptRows``), or their Parquet files.

    Raises if any source's read count differs from kept + removed: a lost document is a bug.
    """
    per_source: dict[str, dict] = {}
    cat = {s.name: s.category for s in recipe.sources}
    lic = {s.name: s.license for s in recipe.sources}
    for s in recipe.sources:
        if s.enabled:
            per_source[s.name] = {"category": s.category, "license": s.license, "read": read_counts.get(s.name, 0),
                                  "kept": 0, "removed": 0, "chars": 0, "bytes": 0, "tokens": 0, "removed_by": {}}
    reasons: dict[str, int] = defaultdict(int)
    lengths: Counter[int] = Counter()  # length -> documents: exact quantiles in memory per distinct length
    columns = ["text", "source", "n_chars"]
    for t in kept.batches(columns) if hasattr(kept, "batches") else _batches(kept, columns):
        for src, group in _group_by_source(t):
            s = per_source.setdefault(src, {"category": cat.get(src, ""), "license": lic.get(src, ""), "read": 0,
                                            "kept": 0, "removed": 0, "chars": 0, "bytes": 0, "tokens": 0,
                                            "removed_by": {}})
            s["kept"] += group.num_rows
            s["chars"] += int(pc.sum(group.column("n_chars")).as_py() or 0)
            s["bytes"] += int(pc.sum(pc.binary_length(group.column("text").cast(pa.binary()))).as_py() or 0)
            s["tokens"] += tokens.count_column(group.column("text"))
        values, counts = np.unique(t.column("n_chars").to_numpy(zero_copy_only=False), return_counts=True)
        lengths.update(dict(zip(values.tolist(), counts.tolist())))
    for t in _batches(removed_files, ["source", "removed_by", "reason"]):
        for src, by, reason in zip(t.column("source").to_pylist(), t.column("removed_by").to_pylist(),
                                   t.column("reason").to_pylist()):
            s = per_source.setdefault(src, {"category": cat.get(src, ""), "read": 0, "kept": 0, "removed": 0,
                                            "chars": 0, "bytes": 0, "tokens": 0, "removed_by": {}})
            s["removed"] += 1
            code = f"{by}:{(reason or '').split(':')[0].strip()}" if reason and reason.split(":")[0] != by else by
            s["removed_by"][code] = s["removed_by"].get(code, 0) + 1
            reasons[code] += 1
    lost = {k: v for k, v in per_source.items() if v["read"] != v["kept"] + v["removed"]}
    if lost:
        detail = "; ".join(f"{k}: read {v['read']} != kept {v['kept']} + removed {v['removed']}" for k, v in lost.items())
        raise CumedError(f"documents unaccounted for ({detail}); this is a bug in a step: please report it")
    categories: dict[str, dict] = {}
    for s in per_source.values():
        c = categories.setdefault(s["category"], {"read": 0, "kept": 0, "removed": 0, "chars": 0, "bytes": 0, "tokens": 0})
        for k in c:
            c[k] += s[k]
    return {
        "tokenizer": tokens.name,
        "sources": per_source,
        "categories": categories,
        "removed_by_reason": dict(sorted(reasons.items())),
        "steps": _step_stats(work),
        "read": sum(s["read"] for s in per_source.values()),
        "kept": sum(s["kept"] for s in per_source.values()),
        "removed": sum(s["removed"] for s in per_source.values()),
        "length_quantiles": _quantiles(lengths),
    }


def _group_by_source(t: pa.Table):
    sources = t.column("source")
    values = pc.unique(sources).to_pylist()
    if len(values) == 1 and values[0] is not None:  # a batch of one source, the usual: no copy of its texts
        yield values[0], t
        return
    for src in values:
        yield src, t.filter(pc.equal(sources, src))


def _batches(files, columns: list[str], rows: int = 65_536):
    """The files' rows as tables of at most ``rows`` rows: the publishing process holds one batch,
    not a shard (a shard of a 10M-document corpus is ~250k documents)."""
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=rows, columns=columns):
            yield pa.Table.from_batches([batch])


def _quantiles(lengths: Counter[int]) -> dict:
    """p05/p50/p95/max of the lengths, each the value at index int(q * n) of the sorted list."""
    n = sum(lengths.values())
    if not n:
        return {}
    keys = sorted(lengths)
    cumulative = np.cumsum([lengths[k] for k in keys])
    pick = lambda q: keys[int(np.searchsorted(cumulative, min(n - 1, int(q * n)), side="right"))]  # noqa: E731
    return {"p05": pick(0.05), "p50": pick(0.5), "p95": pick(0.95), "max": keys[-1]}


def _step_stats(work: Path) -> dict:
    """Counters that datatrove merged per step (``changed``, ``pii_*``, ``dropped_*``...)."""
    out = {}
    for stage in ("a", "b", "c"):
        f = work / "logs" / stage / "stats.json"
        if not f.is_file():
            continue
        for step in json.loads(f.read_text()):
            # datatrove names steps "<type>: <name>"; the name alone is what users know.
            name = re.sub(r"^\W+", "", step.get("name", "?").split(": ", 1)[-1]) or "?"
            counters = {}
            for k, v in (step.get("stats") or {}).items():
                if isinstance(v, dict) and "total" in v:
                    counters[k] = v["total"]
                elif isinstance(v, (int, float)):
                    counters[k] = v
            if counters:
                out[name] = counters
    return out


