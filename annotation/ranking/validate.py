"""Label Studio export -> validated rankings, problems, and inter-annotator agreement.

Label Studio does not validate results against the config, so every annotation is checked here:
every response of the task ranked exactly once, no unknown id, no duplicated id, ties only where
the batch allows them. An invalid ranking is reported with its task id and skipped.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from itertools import combinations


@dataclass
class Ranking:
    prompt_id: str
    task_id: int | str | None
    annotation_id: int | str
    annotator: str
    ranking: list[list[str]]  # tie groups, best first
    ratings: dict = field(default_factory=dict)  # "relevance:rXXXXXX" -> 1..5
    comment: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Problem:
    task_id: int | str | None
    annotation_id: int | str | None
    prompt_id: str | None
    problem: str

    def to_dict(self) -> dict:
        return asdict(self)


def _annotator(ann: dict) -> str:
    who = ann.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return str(who if who is not None else "unknown")


def _groups(value: dict) -> tuple[list[list[str]] | None, str]:
    """Tie groups from a ranker value; (None, why) when the shape is not a ranker result."""
    ranker = (value or {}).get("ranker")
    if not isinstance(ranker, dict) or not ranker:
        return None, "ranker result has no value.ranker"
    if list(ranker) == ["rank"]:  # plain List + Ranker: one strict order
        ids = ranker["rank"]
        if not isinstance(ids, list):
            return None, "value.ranker.rank is not a list"
        return [[i] for i in ids], ""
    groups = []  # buckets rank_1..rank_K in bucket order; "_" is LS's internal unsorted column
    keys = sorted((k for k in ranker if k != "_"), key=lambda k: (len(k), k))
    if ranker.get("_"):
        return None, f"responses left unsorted: {ranker['_']}"
    for k in keys:
        ids = ranker[k]
        if not isinstance(ids, list):
            return None, f"value.ranker.{k} is not a list"
        if ids:
            groups.append(list(ids))
    return groups, ""


def check_ranking(groups: list[list[str]], expected: set[str], ties_allowed: bool) -> str:
    """'' when valid, else what is wrong."""
    flat = [i for g in groups for i in g]
    if not all(isinstance(i, str) for i in flat):
        return f"non-string response id in {groups}"
    dup = sorted({i for i in flat if flat.count(i) > 1})
    if dup:
        return f"response id ranked twice: {', '.join(dup)}"
    unknown = sorted(set(flat) - expected)
    if unknown:
        return f"unknown response id: {', '.join(unknown)}"
    missing = sorted(expected - set(flat))
    if missing:
        return f"response not ranked: {', '.join(missing)}"
    if not ties_allowed and any(len(g) > 1 for g in groups):
        return "ties are not allowed in this batch"
    return ""


def parse_tasks(tasks: list[dict], expected: dict[str, set[str]], ties_allowed: bool = False
                ) -> tuple[list[Ranking], list[Problem], int]:
    """(valid rankings, problems, number of submitted annotations) from a Label Studio JSON export.

    ``expected``: prompt_id -> the response ids of its task (from batch state, never from the export).
    """
    out, problems, submitted = [], [], 0
    for task in tasks:
        if not isinstance(task, dict):
            problems.append(Problem(None, None, None, f"task is a {type(task).__name__}, not an object"))
            continue
        task_id = task.get("id")
        pid = (task.get("data") or {}).get("prompt_id")
        for ann in task.get("annotations") or []:
            if ann.get("was_cancelled"):
                continue
            submitted += 1
            ann_id = ann.get("id")
            if not pid:
                problems.append(Problem(task_id, ann_id, None, "task data has no prompt_id"))
                continue
            if pid not in expected:
                problems.append(Problem(task_id, ann_id, pid, "prompt_id is not in this batch"))
                continue
            if ann_id is None:
                problems.append(Problem(task_id, None, pid, "annotation has no id"))
                continue
            result = ann.get("result")
            if not isinstance(result, list):
                problems.append(Problem(task_id, ann_id, pid, "annotation result is not a list"))
                continue
            rank_items = [r for r in result if isinstance(r, dict) and r.get("from_name") == "rank"]
            if len(rank_items) != 1:
                problems.append(Problem(task_id, ann_id, pid, f"expected one ranker result, found {len(rank_items)}"))
                continue
            groups, why = _groups(rank_items[0].get("value"))
            if groups is None:
                problems.append(Problem(task_id, ann_id, pid, why))
                continue
            why = check_ranking(groups, expected[pid], ties_allowed)
            if why:
                problems.append(Problem(task_id, ann_id, pid, why))
                continue
            ratings, comment = {}, ""
            for r in result:
                name = str(r.get("from_name") or "") if isinstance(r, dict) else ""
                if name.startswith("rating_") and isinstance(r.get("value"), dict):
                    ratings[name[len("rating_"):]] = r["value"].get("rating")
                elif name == "comment":
                    text = (r.get("value") or {}).get("text") or []
                    comment = "\n".join(text) if isinstance(text, list) else str(text)
            out.append(Ranking(str(pid), task_id, ann_id, _annotator(ann), groups, ratings, comment))
    return out, problems, submitted


# --------------------------------------------------------------------------- agreement


def rank_positions(groups: list[list[str]]) -> dict[str, int]:
    """response id -> 1-based rank of its tie group."""
    return {i: k + 1 for k, g in enumerate(groups) for i in g}


def kendall_tau_b(a: list[list[str]], b: list[list[str]]) -> float | None:
    """Kendall's tau-b over the responses both rankings share (ties handled); None if undefined."""
    pa_, pb = rank_positions(a), rank_positions(b)
    items = sorted(set(pa_) & set(pb))
    conc = disc = ties_a = ties_b = 0
    for x, y in combinations(items, 2):
        da = (pa_[x] > pa_[y]) - (pa_[x] < pa_[y])
        db = (pb[x] > pb[y]) - (pb[x] < pb[y])
        if da == 0 and db == 0:
            continue
        if da == 0:
            ties_a += 1
        elif db == 0:
            ties_b += 1
        elif da == db:
            conc += 1
        else:
            disc += 1
    denom = math.sqrt((conc + disc + ties_a) * (conc + disc + ties_b))
    return None if denom == 0 else (conc - disc) / denom


def pairwise_agreement(a: list[list[str]], b: list[list[str]]) -> float | None:
    """Fraction of response pairs both rankings order the same way (a tie agrees only with a tie)."""
    pa_, pb = rank_positions(a), rank_positions(b)
    items = sorted(set(pa_) & set(pb))
    pairs = list(combinations(items, 2))
    if not pairs:
        return None
    same = sum(((pa_[x] > pa_[y]) - (pa_[x] < pa_[y])) == ((pb[x] > pb[y]) - (pb[x] < pb[y])) for x, y in pairs)
    return same / len(pairs)


def latest_per_annotator(rankings: list[Ranking]) -> list[Ranking]:
    """One ranking per (prompt, annotator): the latest annotation id wins."""
    latest: dict[tuple[str, str], Ranking] = {}
    for r in sorted(rankings, key=lambda r: str(r.annotation_id).zfill(20)):
        latest[(r.prompt_id, r.annotator)] = r
    return list(latest.values())


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return None if not xs else sum(xs) / len(xs)


def agreement(rankings: list[Ranking], conflict_tau: float = 0.0) -> dict:
    """Kendall's tau and pairwise agreement over prompts ranked by two or more annotators.

    ``conflicts``: prompts where some annotator pair has tau below ``conflict_tau`` (opposite
    orders more often than equal ones): listed for adjudication.
    """
    per_prompt: dict[str, list[Ranking]] = defaultdict(list)
    for r in latest_per_annotator(rankings):
        per_prompt[r.prompt_id].append(r)
    taus, agrees = [], []
    pair_stats: dict[str, list[tuple]] = defaultdict(list)
    ann_stats: dict[str, list[tuple]] = defaultdict(list)
    conflicts = []
    for pid, rs in sorted(per_prompt.items()):
        worst = None
        for x, y in combinations(sorted(rs, key=lambda r: r.annotator), 2):
            t, g = kendall_tau_b(x.ranking, y.ranking), pairwise_agreement(x.ranking, y.ranking)
            taus.append(t)
            agrees.append(g)
            pair_stats[f"{x.annotator}|{y.annotator}"].append((t, g))
            ann_stats[x.annotator].append((t, g))
            ann_stats[y.annotator].append((t, g))
            if t is not None and (worst is None or t < worst[0]):
                worst = (t, x.annotator, y.annotator)
        if worst is not None and worst[0] < conflict_tau:
            conflicts.append({"prompt_id": pid, "min_tau": round(worst[0], 4), "annotators": [worst[1], worst[2]],
                              "rankings": {r.annotator: r.ranking for r in rs}})

    def summary(vals):
        return {"n": len(vals), "kendall_tau": _mean([v[0] for v in vals]), "pairwise_agreement": _mean([v[1] for v in vals])}

    return {
        "prompts_multi": sum(len(v) >= 2 for v in per_prompt.values()),
        "kendall_tau": _mean(taus),
        "pairwise_agreement": _mean(agrees),
        "pairs": {k: summary(v) for k, v in sorted(pair_stats.items())},
        "annotators": {k: summary(v) for k, v in sorted(ann_stats.items())},
        "conflicts": conflicts,
    }


def consensus(rankings: list[Ranking]) -> list[list[str]]:
    """One ranking from several annotators: mean rank (Borda); equal means stay a tie group."""
    if len(rankings) == 1:
        return [list(g) for g in rankings[0].ranking]
    total: dict[str, float] = defaultdict(float)
    for r in rankings:
        for i, pos in rank_positions(r.ranking).items():
            total[i] += pos / len(rankings)
    groups: dict[float, list[str]] = defaultdict(list)
    for i, m in total.items():
        groups[round(m, 9)].append(i)
    return [sorted(groups[m]) for m in sorted(groups)]
