"""Training examples from ``labels`` versions (``cumed annotate``), with their lineage.

A labels version names the documents version it scored as its parent; the texts come from there
(kept or removed rows), the label from the row's ``label`` (keep when the model's score reached the
rubric's threshold). The examples feed the same training as review labels
(``annotation.quality.workflow.train_and_publish``); ``source`` of an example is ``labels:<source>``,
so the held-out split keeps each source's share.
"""

from __future__ import annotations

from cumed.errors import CumedError
from cumed.store import Store

from annotation.quality.weak_labels import DISCARD, KEEP, LabeledText


def label_examples(store: Store, refs: list[str]) -> tuple[list[LabeledText], dict]:
    """(examples, lineage) from labels versions; a document labelled in two of them keeps the first."""
    examples, used, datasets, seen = [], [], set(), set()
    for ref in refs:
        dv = store.get(ref)
        if dv.kind != "labels":
            raise CumedError(f"--labels {ref}: {dv.ref} is a {dv.kind} dataset; give a labels version "
                             f"(cumed annotate DOCS@N --rubric quality publishes one)")
        parents = (dv.manifest.get("lineage") or {}).get("parents") or []
        if len(parents) != 1:
            raise CumedError(f"{dv.ref}: lineage parents {parents!r}; a labels version names the one documents "
                             f"version it scored")
        rows = dv.to_arrow(columns=["id", "label", "rubric", "model"]).to_pylist()
        bad = next((r for r in rows if r["label"] not in ("keep", "discard")), None)
        if bad is not None:
            raise CumedError(f"{dv.ref}, id {bad['id']!r}: field label is {bad['label']!r}; use keep or discard")
        ids = {r["id"] for r in rows}
        texts = {}
        src = store.get(parents[0])
        for part in ("data", "removed"):
            if part == "removed" and not src.removed_rows:
                continue
            t = src.to_arrow(part, columns=["id", "text", "source"])
            for i, text, s in zip(*(t.column(c).to_pylist() for c in ("id", "text", "source"))):
                if i in ids:
                    texts[i] = (text, s)
        missing = sorted(ids - set(texts))
        if missing:
            raise CumedError(f"{dv.ref}: {len(missing)} labelled documents are not in {src.ref} (first: {missing[0]}); "
                             f"was the labels version published from another documents version?")
        n_keep = n_discard = 0
        for r in rows:
            if r["id"] in seen:
                continue
            seen.add(r["id"])
            label = KEEP if r["label"] == "keep" else DISCARD
            n_keep, n_discard = n_keep + (label == KEEP), n_discard + (label == DISCARD)
            text, s = texts[r["id"]]
            examples.append(LabeledText(text, label, f"labels:{s}"))
        datasets.update({dv.ref, src.ref})
        scoring = (dv.manifest.get("lineage") or {}).get("scoring") or {}
        used.append({"ref": dv.ref, "documents": src.ref, "rubric": scoring.get("rubric_version"),
                     "threshold": scoring.get("threshold"), "models": sorted({r["model"] for r in rows}),
                     "keep": n_keep, "discard": n_discard})
    return examples, {"datasets": sorted(datasets), "label_versions": used}
