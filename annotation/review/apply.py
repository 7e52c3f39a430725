"""Apply review decisions: the next version moves discarded documents to ``removed``.

Several annotators on a document: majority vote; ties are not applied but listed for
adjudication. Agreement (Krippendorff's alpha, pairwise Cohen's kappa) is reported per batch, and
for a batch pushed with predictions the model-reviewer agreement (agree count, rate, confusion, kappa).
Lineage names the parent version, the batches, their annotation ids and annotators.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from cumed.errors import CumedError
from cumed.store import DatasetVersion, Store, parse_ref

from annotation.review.decisions import cohen_kappa_pairs, krippendorff_alpha_nominal, majority
from annotation.review.predictions import agreement
from annotation.review.queue import ReviewState


def apply(store: Store, ref: str, batches: list[str]) -> tuple[DatasetVersion, dict]:
    parent = store.get(ref)
    name, _ = parse_ref(ref)
    if parent.kind != "documents":
        raise CumedError(f"review apply needs a documents dataset; {parent.ref} is {parent.kind}")
    decisions, per_batch, annotations = [], {}, []
    for b in batches:
        state = ReviewState.for_batch(store, b)
        if state.dataset != name:
            raise CumedError(f"batch {b} belongs to dataset {state.dataset}, not {name}")
        ds = state.decisions(b)
        if not ds:
            raise CumedError(f"batch {b} has no decisions yet; run cumed review pull {b} first")
        decisions += ds
        per_batch[b] = {
            "decisions": len(ds),
            "krippendorff_alpha": krippendorff_alpha_nominal(ds),
            "cohen_kappa": cohen_kappa_pairs(ds),
        }
        pred = state.predictions(b)
        if pred is not None:
            suggested = {d: s["decision"] for d, s in (pred.get("suggestions") or {}).items()}
            per_batch[b]["model_agreement"] = agreement(pred.get("model_version"), suggested, ds)
        annotations.append({"batch": b, "annotation_ids": sorted({str(d.annotation_id) for d in ds}),
                            "annotators": sorted({d.annotator for d in ds})})
    verdicts = majority(decisions)
    discard = {doc: v for doc, v in verdicts.items() if v.decision == "discard"}
    ties = sorted(doc for doc, v in verdicts.items() if v.decision is None)

    data = parent.to_arrow()
    in_parent = set(data.column("id").to_pylist())
    unknown = sorted(set(discard) - in_parent)
    mask = pc.is_in(data.column("id"), value_set=pa.array(sorted(discard), pa.string()))
    moved = data.filter(mask)
    reasons = [f"manual_review:{discard[i].reason}" for i in moved.column("id").to_pylist()]
    moved = moved.append_column("removed_by", pa.array(["manual_review"] * moved.num_rows, pa.string()))
    moved = moved.append_column("reason", pa.array(reasons, pa.string()))
    kept = data.filter(pc.invert(mask))

    stats = json.loads(json.dumps(parent.manifest.get("stats") or {}))
    by_reason = stats.setdefault("removed_by_reason", {})
    for r in reasons:
        by_reason[r] = by_reason.get(r, 0) + 1
    review = {
        "batches": per_batch,
        "reviewed_docs": len(verdicts),
        "kept_by_review": sum(v.decision == "keep" for v in verdicts.values()),
        "discarded": moved.num_rows,
        "ties_for_adjudication": ties,
        "not_in_parent": unknown,
    }
    stats["manual_review"] = review
    for src_stats in (stats.get("sources") or {}).values():
        src_stats.setdefault("removed_by", {})
    for src, r in zip(moved.column("source").to_pylist(), reasons):
        s = (stats.get("sources") or {}).get(src)
        if s is not None:
            s["kept"] -= 1
            s["removed"] += 1
            s["removed_by"][r] = s["removed_by"].get(r, 0) + 1
    if "kept" in stats:
        stats["kept"] -= moved.num_rows
        stats["removed"] = stats.get("removed", 0) + moved.num_rows
    lineage = {**(parent.manifest.get("lineage") or {}), "parents": [parent.ref], "annotations": annotations}
    removed = [parent.to_arrow("removed"), moved] if parent.removed_rows else [moved]
    dv = store.publish(name, [kept], kind="documents", removed=removed, stats=stats, lineage=lineage)
    return dv, review
