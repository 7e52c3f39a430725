"""Versioned quality-classifier artifacts in the store, with their training data's lineage.

Layout (beside the datasets, under a name the dataset listing ignores)::

    <store>/_models/<name>/v<N>/model.bin     the fastText model
    <store>/_models/<name>/v<N>/meta.json     tokenizer, params, threshold, metrics, lineage, sha256

Publishing follows the dataset store: files are written to ``.tmp-<uuid>/`` beside the
target, fsynced, and renamed to ``v<N>`` while holding ``<store>/_models/<name>/.lock``, so
concurrent publishers get distinct versions and a crash never leaves a half version.
``meta.json`` (which records the version number) is written under the lock just before the
rename, so a ``v<N>`` always has one.

``lineage`` is free-form but by convention holds ``datasets`` (store refs the texts came from),
``label_batches`` (review batch ids), ``weak_label_sources`` (see ``weak_labels.source_lineage``),
``train_rows``/``held_out_rows`` and the ``split`` rule.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

from curation import __version__
from curation.errors import CumedError
from curation.store import NAME_RE, TMP_PREFIX, VERSION_DIR_RE, Store, _fsync_dir, sha256_file

from .train import QualityModel

MODELS_DIR = "_models"
MODEL_FILE, META_FILE = "model.bin", "meta.json"
ARTIFACT_KIND = "quality-classifier"


def _models_root(store) -> Path:
    root = store.root if isinstance(store, Store) else Path(store)
    return root / MODELS_DIR


def artifact_versions(store, name: str = "quality") -> list[int]:
    folder = _models_root(store) / name
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = VERSION_DIR_RE.match(p.name)
        if m and (p / META_FILE).is_file():
            out.append(int(m.group(1)))
    return sorted(out)


def save_artifact(model: QualityModel, store, name: str = "quality", *, metrics: dict | None = None,
                  threshold: float | None = None, target_precision: float | None = None,
                  lineage: dict | None = None, extra: dict | None = None) -> Path:
    """Publish ``model`` as the next version of ``<store>/_models/<name>``; returns the version dir."""
    if not NAME_RE.match(name):
        raise CumedError(f"bad model name {name!r}: use lower-case letters, digits, '.', '_' or '-'")
    folder = _models_root(store) / name
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        model_path = tmp / MODEL_FILE
        model.save_model(model_path)
        with open(model_path, "rb+") as f:
            os.fsync(f.fileno())
        thr = float(model.threshold if threshold is None else threshold)
        meta = {
            "kind": ARTIFACT_KIND,
            "name": name,
            "cumed_version": __version__,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "tokenizer": model.tokenizer,
            "fasttext_params": {k: v for k, v in model.params.items() if not k.endswith("_s")},
            "labels": {"positive": "keep", "negative": "discard"},
            "score": "P(keep) from fastText softmax; documents with score < threshold are removed",
            "threshold": thr,
            "target_precision": target_precision,
            "metrics": metrics or {},
            "lineage": lineage or {},
            "files": {MODEL_FILE: {"bytes": model_path.stat().st_size, "sha256": sha256_file(model_path)}},
            **(extra or {}),
        }
        with open(folder / ".lock", "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                meta["version"] = version = (artifact_versions(store, name) or [0])[-1] + 1
                with open(tmp / META_FILE, "w", encoding="utf-8") as f:
                    json.dump(meta, f, ensure_ascii=False, indent=2, sort_keys=True, default=_json_default)
                    f.flush()
                    os.fsync(f.fileno())
                _fsync_dir(tmp)
                target = folder / f"v{version}"
                os.rename(tmp, target)
                _fsync_dir(folder)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
        return target
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def resolve_artifact(spec: str | os.PathLike, store=None) -> Path:
    """A version directory from a path (``.../v3`` or a folder holding ``meta.json``) or
    ``name@N`` / ``name@latest`` / ``name`` looked up in ``<store>/_models``."""
    p = Path(spec)
    if (p / META_FILE).is_file():
        return p
    m = re.fullmatch(r"([a-z0-9][a-z0-9._-]*)(?:@(?:v?([1-9][0-9]*)|latest))?", str(spec))
    if m and store is not None:
        name, v = m.group(1), m.group(2)
        versions = artifact_versions(store, name)
        if not versions:
            raise CumedError(f"no quality model {name!r} in {_models_root(store)}; train one first")
        v = int(v) if v else versions[-1]
        if v not in versions:
            raise CumedError(f"{name}@{v} not found; versions: {', '.join(f'{name}@{x}' for x in versions)}")
        return _models_root(store) / name / f"v{v}"
    raise CumedError(f"quality model {str(spec)!r}: not an artifact directory (no {META_FILE}); "
                     f"pass <store>/_models/<name>/v<N> or NAME@N with a store")


def read_meta(path: str | os.PathLike) -> dict:
    mpath = Path(path) / META_FILE
    try:
        return json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CumedError(f"unreadable {mpath}: {e}; re-publish the model") from e


def load_artifact(path: str | os.PathLike, store=None, verify: bool = True) -> tuple[QualityModel, dict]:
    """(model, meta) of an artifact; ``verify`` checks model.bin against the recorded sha256."""
    d = resolve_artifact(path, store)
    meta = read_meta(d)
    if meta.get("kind") != ARTIFACT_KIND:
        raise CumedError(f"{d}: kind {meta.get('kind')!r}, expected {ARTIFACT_KIND!r}")
    model_path = d / MODEL_FILE
    if verify:
        want = meta["files"][MODEL_FILE]["sha256"]
        got = sha256_file(model_path)
        if got != want:
            raise CumedError(f"{model_path}: sha256 {got[:12]}... != recorded {want[:12]}...; the artifact is damaged, re-publish it")
    model = QualityModel.load(model_path, meta["tokenizer"], meta.get("fasttext_params"), meta.get("threshold", 0.5))
    return model, meta
