"""The side files under an object-storage ``--raw`` (evaluation sets, lexicon files), mirrored
into a local folder for the steps that read them.

Why: those steps read their files as local files (the evaluation sets in their several JSON
layouts, the lexicon's TSV and word lists), and a build with ``--raw s3://...`` used to stop with
"set steps.decontaminate.raw to a local folder": a cluster whose nodes share only the bucket
then needed a copy of the files on every node. Now the driver copies just the files the recipe's
steps name, and reads them there: the lexicon's terms are collected when its filter is built, and
the decontamination index is built in the driver too when ``--raw`` is remote
(``curation.build.steps.build_steps``), so the tasks carry both and read no side file.

The mirror is ``$CUMED_CACHE/raw-mirror/<hash of the URL>/files/``, each file at its path
relative to ``--raw``: the lineage names and hashes it exactly as a local build of the same
files does, so both get the same work folder key and publish the same content hash. A file is
downloaded again when its ETag (or, where the store gives none, its size and modification time)
differs from the copy's; the copy lands under a temporary name and is renamed into place.

Not mirrored: absolute paths (local files already), the relevance step's labelled papers (its
``labels_raw`` must still be local).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from cumed.cache import cache_root
from cumed.errors import CumedError


def mirror(raw_url: str, patterns: Iterable[str], *, key: str, what: str) -> Path:
    """The local folder holding the files ``patterns`` (paths or globs relative to ``raw_url``)
    match, fetched if new or changed. ``key`` (the recipe key naming them) and ``what`` word the
    error when a pattern matches nothing."""
    import fsspec


    fs, root = fsspec.core.url_to_fs(raw_url)
    root = root.rstrip("/")
    base = cache_root() / "raw-mirror" / hashlib.sha256(raw_url.rstrip("/").encode()).hexdigest()[:16]
    files, stamps = base / "files", base / "stamps"
    for pattern in patterns:
        if Path(str(pattern)).is_absolute():
            continue
        found = [p for p in sorted(fs.glob(f"{root}/{pattern}")) if fs.info(p).get("type") != "directory"]
        if not found:
            raise CumedError(f"{what}: nothing matches {str(pattern)!r} under {raw_url}; set steps.{key} in the "
                             "recipe (paths relative to --raw) or upload the files there")
        for remote in found:
            rel = remote[len(root) + 1:]
            stamp = _stamp(fs.info(remote))
            local, seen = files / rel, stamps / f"{rel}.json"
            if local.is_file() and seen.is_file() and stamp is not None and seen.read_text() == stamp:
                continue
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(f".{local.name}.{os.getpid()}.tmp")
            fs.get(remote, str(tmp))
            os.replace(tmp, local)
            seen.parent.mkdir(parents=True, exist_ok=True)
            seen.write_text(stamp or "")
    return files


def _stamp(info: dict) -> str | None:
    """What says a remote file changed: its ETag, else its size and modification time; None
    when the store gives neither (the file is then fetched every time)."""
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return json.dumps({"etag": str(etag)})
    mtime = info.get("LastModified") or info.get("mtime") or info.get("last_modified")
    if mtime is None:
        return None
    return json.dumps({"size": info.get("size"), "mtime": str(mtime)})
