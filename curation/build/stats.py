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


class BuildStats:
    """Table-1 figures per source and category, removal reasons, per-step change counts,
    accumulated from the kept and removed rows as they pass on their way to the store
    (``kept``/``removed`` return the table they are given), so publishing reads the kept rows
    once, not once for the figures and once for the store (1M short QA records: ~0.4 s; 10M:
    ~6 s). ``result()`` raises if any source's read count differs from kept + removed: a lost
    document is a bug, and the version is not published (``Store.publish`` asks for the figures
    after the rows, before it commits)."""

    def __init__(self, recipe: Recipe, read_counts: dict, tokens: TokenCounter, work: Path):
        self.tokens, self.work = tokens, work
        self._cat = {s.name: s.category for s in recipe.sources}
        self._lic = {s.name: s.license for s in recipe.sources}
        self.per_source: dict[str, dict] = {}
        for s in recipe.sources:
            if s.enabled:
                self._source(s.name)["read"] = read_counts.get(s.name, 0)
        self.reasons: dict[str, int] = defaultdict(int)
        self.lengths: Counter[int] = Counter()  # length -> documents: exact quantiles in memory per distinct length
        self._result: dict | None = None

    def _source(self, name: str) -> dict:
        if name not in self.per_source:
            self.per_source[name] = {"category": self._cat.get(name, ""), "license": self._lic.get(name, ""),
                                     "read": 0, "kept": 0, "removed": 0, "chars": 0, "bytes": 0, "tokens": 0,
                                     "removed_by": {}}
        return self.per_source[name]

    def kept(self, t: pa.Table) -> pa.Table:
        for src, group in _group_by_source(t):
            s = self._source(src)
            s["kept"] += group.num_rows
            s["chars"] += int(pc.sum(group.column("n_chars")).as_py() or 0)
            s["bytes"] += int(pc.sum(pc.binary_length(group.column("text").cast(pa.binary()))).as_py() or 0)
            s["tokens"] += self.tokens.count_column(group.column("text"))
        values, counts = np.unique(t.column("n_chars").to_numpy(zero_copy_only=False), return_counts=True)
        self.lengths.update(dict(zip(values.tolist(), counts.tolist())))
        return t

    def removed(self, t: pa.Table) -> pa.Table:
        for src, by, reason in zip(t.column("source").to_pylist(), t.column("removed_by").to_pylist(),
                                   t.column("reason").to_pylist()):
            s = self._source(src)
            s["removed"] += 1
            code = f"{by}:{(reason or '').split(':')[0].strip()}" if reason and reason.split(":")[0] != by else by
            s["removed_by"][code] = s["removed_by"].get(code, 0) + 1
            self.reasons[code] += 1
        return t

    def result(self) -> dict:
        """The figures of every row passed so far (computed once: the card and the manifest share them)."""
        if self._result is not None:
            return self._result
        per_source = self.per_source
        lost = {k: v for k, v in per_source.items() if v["read"] != v["kept"] + v["removed"]}
        if lost:
            detail = "; ".join(f"{k}: read {v['read']} != kept {v['kept']} + removed {v['removed']}" for k, v in lost.items())
            raise CumedError(f"documents unaccounted for ({detail}); this is a bug in a step: please report it")
        categories: dict[str, dict] = {}
        for s in per_source.values():
            c = categories.setdefault(s["category"], {"read": 0, "kept": 0, "removed": 0, "chars": 0, "bytes": 0, "tokens": 0})
            for k in c:
                c[k] += s[k]
        self._result = {
            "tokenizer": self.tokens.name,
            "sources": per_source,
            "categories": categories,
            "removed_by_reason": dict(sorted(self.reasons.items())),
            "steps": _step_stats(self.work),
            "read": sum(s["read"] for s in per_source.values()),
            "kept": sum(s["kept"] for s in per_source.values()),
            "removed": sum(s["removed"] for s in per_source.values()),
            "length_quantiles": _quantiles(self.lengths),
        }
        return self._result


def _group_by_source(t: pa.Table):
    sources = t.column("source")
    values = pc.unique(sources).to_pylist()
    if len(values) == 1 and values[0] is not None:  # a batch of one source, the usual: no copy of its texts
        yield values[0], t
        return
    for src in values:
        yield src, t.filter(pc.equal(sources, src))


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


