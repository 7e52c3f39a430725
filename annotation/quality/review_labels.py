"""Training examples from review batches (``annotation.review``), with their lineage.

Each batch records the dataset version it sampled from (``batch.json: ref``); the texts come
from that version (kept or removed rows), the labels from the majority verdict of the batch's
validated decisions (ties are left out). Weak labels named by the user
(``annotation.quality.weak_labels``) can be added with ``weak=``.
"""

from __future__ import annotations

from cumed.errors import CumedError
from cumed.store import Store

from annotation.quality.weak_labels import KEEP, DISCARD, LabeledText


def review_examples(store: Store, batches: list[str]) -> tuple[list[LabeledText], dict]:
    """(examples, lineage) from review batches; ``source`` of an example is ``review:<dataset source>``."""
    from annotation.review.decisions import majority
    from annotation.review.queue import ReviewState

    decisions, refs, used = [], {}, []
    for b in batches:
        state = ReviewState.for_batch(store, b)
        ds = state.decisions(b)
        if not ds:
            raise CumedError(f"batch {b} has no decisions yet; run cumed review pull {b} first")
        decisions += ds
        ref = state.batch(b)["ref"]
        refs.setdefault(ref, set()).update(d.doc_id for d in ds)
        used.append({"batch": b, "ref": ref, "decisions": len(ds), "annotators": sorted({d.annotator for d in ds})})
    verdicts = {doc: v for doc, v in majority(decisions).items() if v.decision in ("keep", "discard")}
    texts: dict[str, tuple[str, str]] = {}
    for ref, ids in refs.items():
        dv = store.get(ref)
        for part in ("data", "removed"):
            try:
                t = dv.to_arrow(part, columns=["id", "text", "source"])
            except Exception:  # a version without removed rows
                continue
            for i, text, src in zip(*(t.column(c).to_pylist() for c in ("id", "text", "source"))):
                if i in ids:
                    texts[i] = (text, src)
    missing = sorted(set(verdicts) - set(texts))
    if missing:
        raise CumedError(f"{len(missing)} reviewed documents not found in their dataset versions "
                         f"(first: {missing[0]}); was a version deleted?")
    examples = [LabeledText(texts[d][0], KEEP if v.decision == "keep" else DISCARD, f"review:{texts[d][1]}")
                for d, v in sorted(verdicts.items())]
    lineage = {"datasets": sorted(refs), "label_batches": used,
               "review_labels": {"keep": sum(e.label == KEEP for e in examples),
                                 "discard": sum(e.label == DISCARD for e in examples),
                                 "ties_left_out": sum(1 for v in majority(decisions).values() if v.decision is None)}}
    return examples, lineage
