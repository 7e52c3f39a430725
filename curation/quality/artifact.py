"""Finding and loading a published quality model (the inference side of the classifier).

A model artifact is a version in the store's models store (``<store>/_models/<name>/v<N>/``,
kind ``model``), published by ``annotation.quality.artifact.save_artifact`` through the same
protocol as a dataset, so it is pushed, pulled and verified like one::

    <store>/_models/<name>/v<N>/manifest.json    files with sha256, lineage (training data, label batches)
    <store>/_models/<name>/v<N>/data/model.bin   the fastText model
    <store>/_models/<name>/v<N>/data/meta.json   tokenizer, fastText params, threshold, metrics

``spec`` is a version folder, ``NAME``, ``NAME@N``, ``NAME@latest`` or ``_models/NAME@N`` (looked
up in ``store``, local or ``s3://``; a remote artifact is pulled into the local cache first).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cumed.errors import CumedError
from cumed.hashing import sha256_file
from cumed.store import Store
from cumed.store.refs import MODELS_PREFIX

from curation.quality.model import QualityModel

ARTIFACT_KIND = "quality-classifier"
MODEL_FILE, META_FILE = "model.bin", "meta.json"


def resolve_artifact(spec: str | os.PathLike, store=None) -> Path:
    """The local version folder of an artifact (pulled first when the store is remote)."""
    p = Path(spec)
    if (p / "manifest.json").is_file():
        return p
    if store is None:
        raise CumedError(f"quality model {str(spec)!r}: not an artifact folder (no manifest.json); "
                         f"pass <store>/_models/<name>/v<N> or NAME@N with a store")
    ref = str(spec).removeprefix(MODELS_PREFIX)
    models = (store if isinstance(store, Store) else Store(store, create=False)).models()
    if getattr(models, "fs", None) is not None:  # remote: model files must be local to be loaded
        return Path(models.pull(ref)["path"])
    try:
        return Path(models.get(ref).path)
    except CumedError as e:
        raise CumedError(f"quality model {ref!r}: {e}; train one first (cumed quality train)") from e


def read_meta(path: str | os.PathLike) -> dict:
    """Training metadata of an artifact, with its name, version, files and lineage from the manifest."""
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        meta = json.loads((path / "data" / META_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CumedError(f"unreadable model artifact {path}: {e}; re-publish the model (cumed quality train)") from e
    if manifest.get("kind") != "model" or not isinstance(meta, dict):
        raise CumedError(f"{path}: kind {manifest.get('kind')!r} is not a model artifact; pass a _models/<name>/v<N> folder")
    files = {Path(f["path"]).name: f for f in manifest.get("files") or [] if isinstance(f, dict) and "path" in f}
    return {**meta, "name": manifest.get("name"), "version": manifest.get("version"), "files": files,
            "created_at": manifest.get("created_at"), "lineage": manifest.get("lineage") or {}}


def load_artifact(path: str | os.PathLike, store=None, verify: bool = True,
                  kind: str = ARTIFACT_KIND) -> tuple[QualityModel, dict]:
    """(model, meta) of an artifact; ``verify`` checks model.bin against the recorded sha256.
    ``kind``: the classifier expected (``quality-classifier``; ``relevance-classifier``)."""
    d = resolve_artifact(path, store)
    meta = read_meta(d)
    if meta.get("kind") != kind:
        raise CumedError(f"{d}: kind {meta.get('kind')!r}, expected {kind!r}")
    if MODEL_FILE not in meta["files"]:
        raise CumedError(f"{d}: the manifest lists no {MODEL_FILE}; re-publish the model")
    model_path = d / meta["files"][MODEL_FILE]["path"]
    if verify:
        want = meta["files"][MODEL_FILE]["sha256"]
        got = sha256_file(model_path) if model_path.is_file() else "missing"
        if got != want:
            raise CumedError(f"{model_path}: sha256 {got[:12]}... != recorded {want[:12]}...; the artifact is damaged, re-publish it")
    model = QualityModel.load(model_path, meta["tokenizer"], meta.get("fasttext_params"), meta.get("threshold", 0.5))
    return model, meta
