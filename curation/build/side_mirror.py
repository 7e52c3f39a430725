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

A ``conversations`` build runs in one process: with ``--raw`` on object storage its source
files and side files are mirrored the same way and the build reads the mirror
(``conversations_raw``). The relevance step's labelled papers (the files of its labelled source,
and that source's index) are mirrored when it trains or looks up its model (``labelled_recipe``).
Not mirrored: absolute paths (local files already).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from cumed.cache import cache_root
from cumed.errors import CumedError
from cumed.hashing import object_etag


def mirror(raw_url: str, patterns: Iterable[str], *, key: str, what: str, required: bool = True) -> Path:
    """The local folder holding the files ``patterns`` (paths or globs relative to ``raw_url``)
    match, fetched if new or changed. ``key`` (the recipe key naming them) and ``what`` word the
    error when a pattern matches nothing (``required=False``: a file a step reads if present)."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(raw_url)
    root = root.rstrip("/")
    files = mirror_folder(raw_url)
    stamps = files.parent / "stamps"
    for pattern in patterns:
        if Path(str(pattern)).is_absolute():
            continue
        # one listing with each file's info (as ``curation.recipe.matching_files``), not a HEAD per file
        found = {p: info for p, info in fs.glob(f"{root}/{pattern}", detail=True).items()
                 if info.get("type") != "directory"}
        if not found and required:
            raise CumedError(f"{what}: nothing matches {str(pattern)!r} under {raw_url}; set steps.{key} in the "
                             "recipe (paths relative to --raw) or upload the files there")
        for remote, info in sorted(found.items()):
            rel = remote[len(root) + 1:]
            stamp = _stamp(info)
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


def labelled_recipe(recipe, source: str):
    """``recipe`` reduced to its ``source`` (the relevance step's labelled papers), read from a
    local mirror of that source's files under the object-storage ``--raw``: the model is trained
    (or found in the store by its training key) from the same texts a local build reads."""
    import dataclasses

    from curation.readers import split_path
    from curation.recipe import matching_files, source_root
    from curation.workfolder import is_url

    raw = str(recipe.raw).rstrip("/")
    s = next((x for x in recipe.sources if x.name == source and x.enabled), None)
    if s is None:
        raise CumedError(f"{recipe.path}: steps.relevance learns from source {source!r}, which the recipe does not "
                         f"read; add it or set steps.relevance.labels_raw to a local raw folder holding it")
    if not (is_url(s.root) and str(s.root).rstrip("/") == raw):
        raise CumedError(f"{recipe.path}: source {source!r} is outside --raw ({s.root}); set "
                         "steps.relevance.labels_raw to a local raw folder holding the labelled papers")
    files = [s.relpath(f) for f in s.files]
    index = s.options.get("index")  # the markdown reader's titles, relative to the source's folder
    if index:
        prefix = split_path(raw, s.path)[2]
        files.append(f"{prefix}/{index}" if prefix else str(index))
    local = mirror(raw, files, key="relevance.labels_raw", what="the labelled papers")
    root, pattern = source_root(local, s.path)
    mirrored = dataclasses.replace(s, root=root, files=matching_files(root, pattern))
    return dataclasses.replace(recipe, raw=local, sources=[mirrored])


def eval_set_paths(options: dict) -> list[str]:
    """The files (relative to ``--raw``) of the evaluation sets a decontaminate step with these
    options reads (none for in-memory sets)."""
    from curation.steps.decontaminate import DEFAULT_SETS, Decontaminate

    files = Decontaminate.side_files(options.get("eval_sets") or DEFAULT_SETS, "", options.get("paths"))
    return [str(f["path"]) for f in files]


def mirror_folder(raw_url: str) -> Path:
    """Where ``mirror`` puts the files of ``raw_url`` (at their paths relative to it)."""
    return cache_root() / "raw-mirror" / hashlib.sha256(raw_url.rstrip("/").encode()).hexdigest()[:16] / "files"


def _stamp(info: dict) -> str | None:
    """What says a remote file changed: its ETag, else its size and modification time; None
    when the store gives neither (the file is then fetched every time)."""
    etag = object_etag(info)
    if etag:
        return json.dumps({"etag": str(etag)})
    mtime = info.get("LastModified") or info.get("mtime") or info.get("last_modified")
    if mtime is None:
        return None
    return json.dumps({"size": info.get("size"), "mtime": str(mtime)})


def conversations_raw(recipe) -> Path:
    """A local mirror of what a ``conversations`` recipe reads under its object-storage
    ``--raw``: the sources' files, the department lexicon's CMeKG files (when that method
    runs), the evaluation sets (when ``decontaminate`` runs)."""
    from curation.sft.build import resolved_steps
    from curation.sft.department import KG_SUBJECTS, KG_TRIPLES, DepartmentSelector
    from curation.workfolder import is_url

    raw = str(recipe.raw).rstrip("/")
    files = []
    for s in recipe.sources:
        if not s.enabled:
            continue
        if not (is_url(s.root) and str(s.root).rstrip("/") == raw):
            raise CumedError(f"{recipe.path}: source {s.name!r} is outside --raw ({s.root}); a conversations build "
                             "on object storage reads its sources under --raw: give the path relative to it")
        files += [s.relpath(f) for f in s.files]
    steps = {e["step"]: dict(e["options"]) for e in resolved_steps(recipe)}
    mirror(raw, files, key="sources", what="the sources")
    lexicon = DepartmentSelector(**steps.get("department", {}))
    if "lexicon" in lexicon.methods and lexicon.terms is None and lexicon.departments:
        mirror(raw, [KG_TRIPLES], key="department", what="the department lexicon (CMeKG)")
        mirror(raw, [KG_SUBJECTS], key="department", what="the department lexicon (CMeKG)", required=False)
    if "decontaminate" in steps:  # its eval_sets with their defaults (resolved_steps)
        mirror(raw, eval_set_paths(steps["decontaminate"]), key="decontaminate.paths", what="the evaluation sets")
    return mirror_folder(raw)
