"""A version's manifest: the keys every kind carries (docs/design.md, "Manifest").

The content hash covers the kind, the schema and every file's path and sha256, nothing else:
two publishes of the same rows get the same hash whatever their stats, lineage or time.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone

from cumed import __version__
from cumed.errors import CumedError
from cumed.store.refs import NAME_RE

# Lineage keys every manifest has, whatever its kind (a builder fills what applies; the rest
# keep these empty values, so a reader never has to ask whether a key exists).
LINEAGE_KEYS = ("parents", "recipe", "config_hash", "code_version", "code_sha256", "inputs", "annotations", "models",
                "executor")


def empty_lineage() -> dict:
    return {"parents": [], "recipe": None, "config_hash": None, "code_version": __version__, "code_sha256": None,
            "inputs": [], "annotations": [], "models": [], "executor": None}


def content_hash(kind: str, schema: str, files: list[dict]) -> str:
    return hashlib.sha256(
        json.dumps({"kind": kind, "schema": schema, "files": [(f["path"], f["sha256"]) for f in files]}).encode()
    ).hexdigest()


def new_manifest(name: str, kind: str, schema: str, files: list[dict], rows: int, removed_rows: int,
                 stats: dict | None, lineage: dict | None, extra: dict | None) -> dict:
    """The manifest of a staged version; ``version`` is set when it is committed."""
    return {
        "name": name,
        "version": None,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "kind": kind,
        "schema": schema,
        "files": files,
        "rows": rows,
        "removed_rows": removed_rows,
        "content_hash": content_hash(kind, schema, files),
        "stats": stats or {},
        "lineage": {**empty_lineage(), **(lineage or {})},
        **(extra or {}),
    }


REQUIRED_KEYS = ("name", "version", "kind", "files", "rows", "removed_rows")
# A listed file is a plain name under data/ or removed/ of its own version: a manifest comes from
# whoever can write to the store (a teammate's bucket), so its paths are joined to local folders
# only after this check (no "..", no absolute path, no folder of its own).
FILE_PATH_RE = re.compile(r"^(data|removed)/[A-Za-z0-9][A-Za-z0-9._-]*$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def check_manifest(manifest, where: str, name: str, version: int) -> dict:
    """A manifest read from a store, checked before anything trusts it: the keys every version
    has, the name and version asked for, and every file a safe relative path with a size and a
    sha256. Raises ``CumedError`` naming the manifest, the field and the fix."""
    fix = "the version is damaged or was written by hand: restore it from a copy or delete it"
    if not isinstance(manifest, dict):
        raise CumedError(f"manifest {where} is not a JSON object; {fix}")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise CumedError(f"manifest {where} lacks {', '.join(missing)}; {fix}")
    if manifest["name"] != name or not isinstance(manifest["name"], str) or not NAME_RE.match(manifest["name"]):
        raise CumedError(f"manifest {where} names {manifest['name']!r}, not the requested {name!r}; {fix}")
    if manifest["version"] != version or isinstance(manifest["version"], bool):
        raise CumedError(f"manifest {where} is version {manifest['version']!r}, not the requested {version}; {fix}")
    files = manifest["files"]
    if not isinstance(files, list):
        raise CumedError(f"manifest {where}: files is not a list; {fix}")
    seen = set()
    for i, f in enumerate(files):
        path = f.get("path") if isinstance(f, dict) else None
        if not isinstance(path, str) or not FILE_PATH_RE.match(path) or ".." in path or path in seen:
            raise CumedError(f"manifest {where}: files[{i}].path {path!r} is not a plain file under data/ or removed/ "
                             f"(or is listed twice); {fix}")
        seen.add(path)
        if not isinstance(f.get("sha256"), str) or not SHA256_RE.match(f["sha256"]):
            raise CumedError(f"manifest {where}: files[{i}] ({path}) has no valid sha256; {fix}")
        if not isinstance(f.get("bytes"), int) or isinstance(f["bytes"], bool) or f["bytes"] < 0:
            raise CumedError(f"manifest {where}: files[{i}] ({path}) has no valid byte size; {fix}")
        rows = f.get("rows")
        if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool) or rows < 0):
            raise CumedError(f"manifest {where}: files[{i}] ({path}) has an invalid row count {rows!r}; {fix}")
    return manifest
