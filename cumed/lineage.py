"""What produced a version: the lineage every manifest carries, whatever its kind.

Keys (docs/design.md, "Manifest"): ``parents`` (store refs read), ``recipe`` (name,
repository-relative path, sha256), ``config_hash`` (everything that decides the output),
``code_version``, ``code_sha256`` (a hash of the sources that ran), ``inputs`` (raw files with
sha256), ``annotations``, ``models`` (artifacts applied, with sha256) and ``executor``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from pathlib import Path

from cumed import __version__
from cumed.store.manifest import LINEAGE_KEYS


@functools.cache
def code_fingerprint(*packages: str) -> str:
    """sha256 over the Python sources (paths and bytes) of ``packages``: what produced a build.

    The version string does not change between releases; this does with every edit, so a
    resumed build never mixes outputs of two code states."""
    h = hashlib.sha256()
    for label, f in code_files(*packages):
        h.update(label.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def code_files(*packages: str) -> list[tuple[str, Path]]:
    """The files ``code_fingerprint`` hashes, as (``pkg/relative/path.py``, absolute path), in
    hashing order: one list, so a test can check that a module (say, the quality filter) is
    covered by the fingerprint without editing the sources."""
    out = []
    for pkg in packages:
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            raise ValueError(f"{pkg!r} is not an importable package")
        root = Path(next(iter(spec.submodule_search_locations))).resolve()
        out += [(f"{pkg}/{f.relative_to(root).as_posix()}", f) for f in sorted(root.rglob("*.py"))]
    return out


def config_hash(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def build_lineage(*, recipe: dict | None, config_hash: str | None, code_packages: tuple[str, ...],
                  inputs: list[dict] = (), parents: list[str] = (), models: list[dict] = (),
                  annotations: list = (), executor: str | None = None, **extra) -> dict:
    """The lineage of a build; ``extra`` keys (a kind's own, e.g. ``ranking_method``) follow the common ones."""
    out = {
        "parents": list(parents),
        "recipe": recipe,
        "config_hash": config_hash,
        "code_version": __version__,
        "code_sha256": code_fingerprint(*code_packages),
        "inputs": list(inputs),
        "annotations": list(annotations),
        "models": list(models),
        "executor": executor,
    }
    assert tuple(out) == LINEAGE_KEYS  # one list of keys, kept in one place
    return {**out, **extra}
