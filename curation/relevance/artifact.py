"""The relevance classifier as a model artifact in the store (``_models/relevance@N``).

Published by the store's own protocol (``publish_files``, as ``annotation.quality.artifact`` does
for the quality model), so it is pushed, pulled and verified like a dataset; loaded for scoring by
``curation.quality.artifact.load_artifact`` (same fastText wrapper, kind ``relevance-classifier``).

``meta.json`` holds only what the training inputs decide (the training key, the threshold, the
cross-validation and held-out rates), never a time: the same labels, texts and options give the
same bytes, so a re-publish is the same version. Timings go to the lineage. ``find`` looks a
model up by its training key, so a build reuses it instead of fitting again.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from cumed import __version__
from cumed.errors import CumedError
from cumed.store import Store

from curation.quality.artifact import META_FILE, MODEL_FILE, resolve_artifact
from curation.quality.model import QualityModel

NAME = "relevance"
KIND = "relevance-classifier"


def find(store: Store, key: str, name: str = NAME) -> Path | None:
    """The newest version of ``_models/<name>`` trained with ``key`` (``training_key``), if any."""
    models = store.models()
    for v in reversed(models.versions(name)):
        try:
            path = resolve_artifact(f"{name}@{v}", store)
            meta = json.loads((path / "data" / META_FILE).read_text(encoding="utf-8"))
        except (CumedError, OSError, ValueError):
            continue  # a damaged version is not a match; `cumed datasets verify` reports it
        if isinstance(meta, dict) and meta.get("kind") == KIND and meta.get("training_key") == key:
            return path
    return None


def publish(model: QualityModel, store: Store, meta: dict, *, lineage: dict, name: str = NAME) -> Path:
    """Publish ``model`` with ``meta`` (deterministic fields only) as the next ``_models/<name>``."""
    meta = {"kind": KIND, "cumed_version": __version__, "tokenizer": model.tokenizer,
            "fasttext_params": {k: v for k, v in model.params.items() if not k.endswith("_s")},
            "labels": {"positive": "medical", "negative": "not"},
            "score": "P(medical) from fastText softmax; documents with score < threshold are removed",
            "threshold": float(model.threshold), **meta}
    with tempfile.TemporaryDirectory(prefix="cumed-relevance-") as tmp:
        model_path = Path(tmp) / MODEL_FILE
        model.save_model(model_path)
        body = json.dumps(meta, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
        dv = store.models().publish_files(
            name, {MODEL_FILE: model_path, META_FILE: body}, kind="model", lineage=lineage,
            card=f"# {name}: relevance classifier (human medicine or not; {model.tokenizer} fastText)\n\n"
                 f"Trained at build time from the committed labels (curation/relevance/labels, RULE.md). "
                 f"Threshold {model.threshold:.4f}; held-out: {meta.get('held_out')}\n")
    return Path(dv.path)
