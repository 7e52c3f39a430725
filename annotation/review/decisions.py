"""Label Studio annotation results -> validated review decisions, votes and agreement.

Label Studio stores whatever a client sends (it does not validate results against the
labeling config), so every annotation is checked here: a missing or unknown decision, a
discard without a reason, or a task without ``doc_id`` is reported with the task id and
skipped; it never counts as a decision.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from itertools import combinations

from annotation.review.config import DECISION_CODES, REASON_CODES


@dataclass(frozen=True)
class Decision:
    doc_id: str
    task_id: int | str | None
    annotation_id: int | str
    annotator: str
    decision: str  # keep | discard
    reason: str  # "" for keep
    comment: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Problem:
    task_id: int | str | None
    annotation_id: int | str | None
    doc_id: str | None
    problem: str

    def to_dict(self) -> dict:
        return asdict(self)


def _choice(result: list, name: str) -> list[str] | None:
    for item in result or []:
        if isinstance(item, dict) and item.get("from_name") == name:
            return list((item.get("value") or {}).get("choices") or [])
    return None


def _text(result: list, name: str) -> str:
    for item in result or []:
        if isinstance(item, dict) and item.get("from_name") == name:
            text = (item.get("value") or {}).get("text") or []
            return "\n".join(text) if isinstance(text, list) else str(text)
    return ""


def _annotator(ann: dict) -> str:
    who = ann.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return str(who if who is not None else "unknown")


def parse_tasks(tasks: list[dict]) -> tuple[list[Decision], list[Problem]]:
    """Decisions and problems from tasks in Label Studio's JSON export format."""
    decisions, problems = [], []
    for task in tasks:
        if not isinstance(task, dict):
            problems.append(Problem(None, None, None, f"task is a {type(task).__name__}, not an object"))
            continue
        task_id = task.get("id")
        doc_id = (task.get("data") or {}).get("doc_id")
        for ann in task.get("annotations") or []:
            ann_id = ann.get("id")
            if ann.get("was_cancelled"):
                continue  # a skipped task is no decision, and not an error either
            if not doc_id:
                problems.append(Problem(task_id, ann_id, None, "task data has no doc_id"))
                continue
            if ann_id is None:
                problems.append(Problem(task_id, None, doc_id, "annotation has no id"))
                continue
            result = ann.get("result")
            if not isinstance(result, list):
                problems.append(Problem(task_id, ann_id, doc_id, "annotation result is not a list"))
                continue
            choice = _choice(result, "decision")
            if not choice:
                problems.append(Problem(task_id, ann_id, doc_id, "no keep/discard decision in the result"))
                continue
            if len(choice) != 1 or choice[0] not in DECISION_CODES:
                problems.append(Problem(task_id, ann_id, doc_id, f"invalid decision {choice!r}; expected keep or discard"))
                continue
            decision = DECISION_CODES[choice[0]]
            reasons = _choice(result, "reason") or []
            reason = ""
            if decision == "discard":
                if len(reasons) != 1 or reasons[0] not in REASON_CODES:
                    problems.append(Problem(task_id, ann_id, doc_id,
                                            f"discard needs exactly one known reason, got {reasons!r}"))
                    continue
                reason = REASON_CODES[reasons[0]]
            decisions.append(Decision(str(doc_id), task_id, ann_id, _annotator(ann), decision, reason,
                                      _text(result, "comment")))
    return decisions, problems


@dataclass
class Verdict:
    doc_id: str
    decision: str | None  # None = tie, for adjudication
    reason: str
    votes: dict


def majority(decisions: list[Decision]) -> dict[str, Verdict]:
    """One verdict per document: majority of annotators (their latest annotation counts); ties stay open."""
    latest: dict[tuple[str, str], Decision] = {}
    for d in sorted(decisions, key=lambda d: str(d.annotation_id).zfill(20)):
        latest[(d.doc_id, d.annotator)] = d
    per_doc: dict[str, list[Decision]] = defaultdict(list)
    for (doc, _), d in latest.items():
        per_doc[doc].append(d)
    out = {}
    for doc, ds in sorted(per_doc.items()):
        votes = Counter(d.decision for d in ds)
        top = votes.most_common()
        if len(top) > 1 and top[0][1] == top[1][1]:
            out[doc] = Verdict(doc, None, "", dict(votes))
            continue
        decision = top[0][0]
        reasons = Counter(d.reason for d in ds if d.decision == "discard")
        reason = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] if reasons else ""
        out[doc] = Verdict(doc, decision, reason, dict(votes))
    return out


def krippendorff_alpha_nominal(decisions: list[Decision]) -> float | None:
    """Krippendorff's alpha (nominal) over documents with two or more annotators; None if too few."""
    units = defaultdict(dict)
    for d in decisions:
        units[d.doc_id][d.annotator] = d.decision
    pairable = [list(v.values()) for v in units.values() if len(v) >= 2]
    if not pairable:
        return None
    coincidence = Counter()
    for values in pairable:
        m = len(values)
        for a, b in ((a, b) for i, a in enumerate(values) for j, b in enumerate(values) if i != j):
            coincidence[(a, b)] += 1 / (m - 1)
    n_c = Counter()
    for (a, _), w in coincidence.items():
        n_c[a] += w
    n = sum(n_c.values())
    observed = sum(w for (a, b), w in coincidence.items() if a != b)
    expected = sum(n_c[a] * n_c[b] for a in n_c for b in n_c if a != b) / (n - 1)
    if expected == 0:
        return 1.0 if observed == 0 else None
    return 1 - observed / expected


def cohen_kappa_pairs(decisions: list[Decision]) -> dict[str, float]:
    """Cohen's kappa for every pair of annotators who reviewed at least 2 common documents."""
    by = defaultdict(dict)
    for d in decisions:
        by[d.annotator][d.doc_id] = d.decision
    out = {}
    for a, b in combinations(sorted(by), 2):
        common = sorted(set(by[a]) & set(by[b]))
        if len(common) < 2:
            continue
        x = [by[a][k] for k in common]
        y = [by[b][k] for k in common]
        po = sum(i == j for i, j in zip(x, y)) / len(common)
        labels = set(x) | set(y)
        pe = sum((x.count(lab) / len(x)) * (y.count(lab) / len(y)) for lab in labels)
        out[f"{a}|{b}"] = 1.0 if pe == 1 else (po - pe) / (1 - pe)
    return out
