"""Pre-annotations: a model's score and suggested decision on each review task, so reviewers
correct a suggestion instead of starting blank, and ``review apply`` can say how often they agree.

Where the suggestion comes from (``--predictions SPEC``):

- a ``labels`` version (``cumed annotate``): the row's 0-5 score, its keep/discard label and the
  model's one-line reason; ``model_version`` is the labels ref (``corpus-quality-labels@1``);
  documents the version did not score get no prediction (counted);
- a classifier in the store's models (``quality@N``, ``_models/relevance@N``, or a version folder):
  P(keep), keep when it reaches the artifact's threshold; ``model_version`` is ``name@N``.

A task carries it in Label Studio's import format, ``predictions: [{"model_version", "score",
"result"}]`` with ``result`` the decision choice of the labeling config (``config.result_items``),
so Label Studio pre-selects it; ``score`` is on 0-1 (a labels score / 5). ``data.suggestion`` repeats
it for the file backend's readers and the meta line shows it. ``predictions.json`` in the batch
folder (written with the pending tasks, before the push) is what ``apply`` compares decisions with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from cumed.errors import CumedError
from cumed.store.refs import MODELS_PREFIX

from annotation.review.config import result_items

CLASSIFIER_KINDS = ("quality-classifier", "relevance-classifier")


@dataclass(frozen=True)
class Suggestion:
    decision: str  # keep | discard
    score: float  # as the model gives it: P(keep), or a rubric's 0-5
    scale: float  # 1.0 or 5.0: score / scale is Label Studio's 0-1 prediction score
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def load_predictions(store, spec: str, frame: pd.DataFrame) -> tuple[str, dict, dict[str, Suggestion]]:
    """(model_version, source description, {doc_id: Suggestion}) for the documents of ``frame`` (``id``, ``text``)."""
    name = spec.split("@", 1)[0]
    if not spec.startswith(MODELS_PREFIX) and "/" not in name and name in store.names():
        dv = store.get(spec)
        if dv.kind != "labels":
            raise CumedError(f"--predictions {spec}: {dv.ref} is a {dv.kind} dataset; give a labels version "
                             f"(cumed annotate) or a classifier in the store's models (quality@N)")
        scoring = (dv.manifest.get("lineage") or {}).get("scoring") or {}
        wanted = set(frame["id"])
        out = {}
        for r in dv.to_arrow(columns=["id", "score", "label", "reason"]).to_pylist():
            if r["id"] in wanted:
                if r["label"] not in ("keep", "discard"):
                    raise CumedError(f"{dv.ref}, id {r['id']!r}: field label is {r['label']!r}; use keep or discard")
                out[r["id"]] = Suggestion(r["label"], float(r["score"]), 5.0, r["reason"] or "")
        return dv.ref, {"kind": "labels", "ref": dv.ref, "rubric": scoring.get("rubric_version"),
                        "threshold": scoring.get("threshold")}, out
    from curation.quality.artifact import load_artifact, read_meta, resolve_artifact

    path = resolve_artifact(spec, store)
    kind = read_meta(path).get("kind")
    if kind not in CLASSIFIER_KINDS:
        raise CumedError(f"--predictions {spec}: {path} is a {kind!r} artifact; give a quality or relevance "
                         f"classifier, or a labels version")
    model, meta = load_artifact(path, kind=kind)
    version = f"{meta['name']}@{meta['version']}"
    thr = float(meta.get("threshold", 0.5))
    scores = model.score(frame["text"].tolist()) if len(frame) else []
    out = {i: Suggestion("keep" if s >= thr else "discard", round(float(s), 6), 1.0)
           for i, s in zip(frame["id"], scores)}
    return version, {"kind": kind, "ref": version, "threshold": thr}, out


def prediction(s: Suggestion, model_version: str) -> dict:
    """One Label Studio prediction: the suggested decision as this config's choice."""
    return {"model_version": model_version, "score": round(min(max(s.score / s.scale, 0.0), 1.0), 6),
            "result": result_items(s.decision)}


def meta_suffix(s: Suggestion, model_version: str) -> str:
    """What the meta line adds: the suggestion, the score and the model's reason."""
    score = f"{s.score:g}/5" if s.scale == 5.0 else f"{s.score:.2f}"
    why = f" ({s.reason})" if s.reason else ""
    return f" · 模型建议 model suggests: {s.decision} {score}{why} [{model_version}]"


def attach(tasks: list[dict], model_version: str, suggestions: dict[str, Suggestion]) -> list[dict]:
    """The tasks with a prediction each where the model has a suggestion for the document."""
    out = []
    for t in tasks:
        s = suggestions.get(t["data"]["doc_id"])
        if s is None:
            out.append(t)
            continue
        data = {**t["data"], "suggestion": {**s.to_dict(), "model_version": model_version},
                "meta": t["data"]["meta"] + meta_suffix(s, model_version)}
        out.append({**t, "data": data, "predictions": [prediction(s, model_version)]})
    return out


def agreement(model_version: str, suggested: dict[str, str], decisions) -> dict:
    """Model vs reviewers on one batch: the reviewers' majority verdict per document (ties left out)
    against the suggestion. ``confusion[model][reviewer]`` counts documents; ``kappa`` is Cohen's
    kappa of the two (None under 2 documents)."""
    from annotation.review.decisions import majority

    conf = {m: {r: 0 for r in ("keep", "discard")} for m in ("keep", "discard")}
    ties = without = 0
    for doc, v in majority(decisions).items():
        if doc not in suggested:
            without += 1
        elif v.decision is None:
            ties += 1
        else:
            conf[suggested[doc]][v.decision] += 1
    n = sum(c for row in conf.values() for c in row.values())
    agree = conf["keep"]["keep"] + conf["discard"]["discard"]
    kappa = None
    if n >= 2:
        pe = sum(sum(conf[x].values()) / n * sum(conf[m][x] for m in conf) / n for x in conf)
        kappa = 1.0 if pe == 1 else round((agree / n - pe) / (1 - pe), 6)
    return {"model_version": model_version, "compared": n, "agree": agree,
            "rate": round(agree / n, 6) if n else None, "kappa": kappa, "confusion": conf,
            "ties_left_out": ties, "without_prediction": without}
