"""Publishing a trained quality classifier as a versioned model artifact, with its training
data's lineage.

The artifact is a ``model`` version in the store's models store (``<store>/_models/<name>``),
published by the store's own protocol (``Store.publish_files``: staged, hashed, committed under
the lock; local or ``s3://``), so ``cumed datasets push|pull|verify _models/<name>@N`` work as for
datasets. Loading it for scoring is curation's side: ``curation.quality.artifact``.

``lineage`` is free-form but by convention holds ``datasets`` (store refs the texts came from),
``label_batches`` (review batch ids), ``weak_label_sources`` (see ``weak_labels.source_lineage``),
``train_rows``/``held_out_rows`` and the ``split`` rule.
"""

from __future__ import annotations

import tempfile
import json
from pathlib import Path

from cumed import __version__
from cumed.store import Store

from curation.quality.artifact import ARTIFACT_KIND, META_FILE, MODEL_FILE
from curation.quality.model import QualityModel


def save_artifact(model: QualityModel, store, name: str = "quality", *, metrics: dict | None = None,
                  threshold: float | None = None, target_precision: float | None = None,
                  lineage: dict | None = None, extra: dict | None = None) -> Path | str:
    """Publish ``model`` as the next version of ``_models/<name>``; returns the version folder."""
    st = store if isinstance(store, Store) else Store(store)
    thr = float(model.threshold if threshold is None else threshold)
    meta = {
        "kind": ARTIFACT_KIND,
        "cumed_version": __version__,
        "tokenizer": model.tokenizer,
        "fasttext_params": {k: v for k, v in model.params.items() if not k.endswith("_s")},
        "labels": {"positive": "keep", "negative": "discard"},
        "score": "P(keep) from fastText softmax; documents with score < threshold are removed",
        "threshold": thr,
        "target_precision": target_precision,
        "metrics": _plain(metrics or {}),
        **_plain(extra or {}),
    }
    with tempfile.TemporaryDirectory(prefix="cumed-model-") as tmp:
        model_path = Path(tmp) / MODEL_FILE
        model.save_model(model_path)
        meta_bytes = json.dumps(meta, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
        # same model bytes and same metadata give the same version (the store's content hash)
        dv = st.models().publish_files(name, {MODEL_FILE: model_path, META_FILE: meta_bytes}, kind="model",
                                       lineage=_standard_lineage(_plain(lineage or {})),
                                       card=f"# {name}: quality classifier ({model.tokenizer} fastText)\n\n"
                                            f"Threshold {thr:.4f}; metrics: {_plain(metrics or {})}\n")
    return dv.path


def _standard_lineage(lineage: dict) -> dict:
    """The model's training data in the lineage keys every version has: the datasets its texts
    came from as ``parents``, the review batches and model-scored labels versions as ``annotations``
    (``review:<batch>``, ``labels:<ref>``); the full detail stays beside
    them (``review``, ``weak_labels``, ``train_rows``...)."""
    found = [lineage, lineage.get("review") or {}, lineage.get("labels") or {}]
    parents = sorted({str(d) for part in found for d in part.get("datasets") or []})
    batches = [b.get("batch") if isinstance(b, dict) else b for part in found for b in part.get("label_batches") or []]
    scored = [v["ref"] for part in found for v in part.get("label_versions") or []]
    return {"parents": parents, "annotations": [f"review:{b}" for b in batches if b] + [f"labels:{r}" for r in scored],
            **lineage}


def _plain(o):
    """numpy scalars in metrics become plain numbers (the manifest is JSON)."""
    import numpy as np

    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if isinstance(o, np.generic):
        return o.item()
    return o
