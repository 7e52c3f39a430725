"""Dataset recipes: ``datasets/<name>.yaml`` parsed, validated and resolved against ``--raw``.

A recipe names its sources (a reader, a path relative to the raw root, a Table-1 category)
and its steps. Validation happens before any work starts and names the recipe file, the
source and the key, with the allowed choices.

The raw root may be a URL (``--raw s3://bucket/raw``), and a source path a URL glob
(``s3://bucket/dumps/*.jsonl.gz``): listed and hashed through fsspec. A file's name in the ids
and the lineage is its path relative to its source's root (``Source.root``): ``--raw``, or, for
a URL path outside ``--raw``, the URL's folder up to its first glob. So the same files read from a
local copy and from a bucket get the same ids, and a build the same content hash.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cumed.errors import CumedError
from cumed.hashing import sha256_file, sha256_text, size_sha256_url
from cumed.lineage import config_hash as hash_config
from cumed.recipes import read_recipe, recipe_lineage
from cumed.store import validate_name
from curation.workfolder import check_reachable, is_url, remote_errors

TOP_KEYS = {"name", "kind", "description", "card", "shards", "tokenizer", "sources", "steps", "license"}
SOURCE_KEYS = {"name", "reader", "path", "category", "department", "license", "options", "enabled", "description", "note"}
SOURCE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")


@dataclass
class Source:
    name: str
    reader: str
    path: str
    category: str
    department: str = ""
    license: str = ""
    options: dict = field(default_factory=dict)
    enabled: bool = True
    description: str = ""
    files: list = field(default_factory=list)  # Paths; URL strings when ``root`` is a URL
    root: Path | str | None = None  # what ``path`` and ``files`` are relative to (module doc)

    def relpath(self, f) -> str:
        """``f``'s path relative to ``root``: its name in ids and lineage."""
        if is_url(self.root):
            return str(f)[len(str(self.root).rstrip("/")) + 1:]
        return str(Path(f).relative_to(self.root))


@dataclass
class Recipe:
    path: Path
    name: str
    kind: str
    sources: list[Source]
    steps: dict
    shards: int = 8
    tokenizer: str | None = None
    description: str = ""
    card: str = ""
    raw: Path | str | None = None  # a URL string for raw data on object storage
    text: str = ""

    @property
    def sha256(self) -> str:
        return sha256_text(self.text)

    def step(self, name: str):
        """The options of step ``name`` when the recipe lists it (``{}`` for ``name: {}`` or
        ``name: true``), else None (absent, ``false`` or null): the steps a recipe lists are the
        steps that run, nothing runs by default."""
        value = self.steps.get(name)
        if value is None or value is False:
            return None
        return {} if value is True else value

    def step_options(self, name: str) -> dict | None:
        """``step(name)`` as a fresh mapping to fill with defaults; a recipe that gives a step
        something else (a list, a number) is told how to write it."""
        options = self.step(name)
        if options is None:
            return None
        if not isinstance(options, dict):
            raise CumedError(f"steps.{name} in {self.path} is {options!r}; give its options as a mapping "
                             f"(`{name}: {{}}` for the defaults) or `false`")
        return dict(options)

    def lineage(self) -> dict:
        return recipe_lineage(self.path, self.text)

    def config_hash(self, extra: dict | None = None) -> str:
        """Hash of everything that decides the output: recipe content, enabled sources, code version."""
        from cumed import __version__

        payload = {
            "recipe": yaml.safe_load(self.text),
            "code": __version__,
            **(extra or {}),
        }
        return hash_config(payload)

    def inputs(self) -> list[dict]:
        """Raw files with sha256, for lineage (and the build's cache key)."""
        out = []
        for s in self.sources:
            if not s.enabled:
                continue
            for f in s.files:
                size, digest = file_size_sha256(f)
                out.append({"source": s.name, "path": s.relpath(f), "bytes": size, "sha256": digest})
        return out


def file_size_sha256(f) -> tuple[int, str]:
    """(bytes, sha256) of a raw file, local or a URL (streamed through fsspec)."""
    if not is_url(f):
        return Path(f).stat().st_size, sha256_file(f)
    with remote_errors(str(f), "raw file"):
        return size_sha256_url(str(f))  # remembered by ETag: a re-run does not download it to hash it


def file_size(f) -> int:
    if not is_url(f):
        return Path(f).stat().st_size
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(str(f))
    with remote_errors(str(f), "raw file"):
        return fs.size(path)


def source_root(raw, path: str) -> tuple[Path | str, str]:
    """(root, path relative to it) of a source path: ``--raw`` and the path; for a URL path,
    ``--raw`` when the URL lies under it, else the URL's folder up to its first glob."""
    if not is_url(path):
        return raw, path
    base = str(raw).rstrip("/")
    if is_url(raw) and path.startswith(base + "/"):
        return raw, path[len(base) + 1:]
    scheme, rest = path.split("://", 1)
    parts = rest.rstrip("/").split("/")
    k = next((i for i, p in enumerate(parts) if i and glob.has_magic(p)), len(parts) - 1)
    if k == 0:
        raise CumedError(f"source path {path!r} names a bucket, not files; give a file, a folder or a glob in it")
    return f"{scheme}://{'/'.join(parts[:k])}", "/".join(parts[k:])


def matching_files(raw: Path | str, pattern: str) -> list:
    """The files a source path names under ``raw``: a file, a glob, or a folder (every file under
    it, hidden ones excepted: a saved ``datasets`` folder, a folder of shards)."""
    if is_url(raw):
        return _matching_urls(str(raw), pattern)
    out = set()
    for p in map(Path, glob.glob(str(raw / pattern), recursive=True)):
        if p.is_file():
            out.add(p)
        elif p.is_dir():
            out.update(f for f in p.rglob("*") if f.is_file() and not any(
                part.startswith(".") for part in f.relative_to(p).parts))
    return sorted(out)


def _matching_urls(raw: str, pattern: str) -> list[str]:
    """``matching_files`` on object storage (fsspec), with the same rules: a file or a folder
    matches, and a hidden part not named in the pattern is skipped, as ``glob`` does locally."""
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(raw)
    root = root.rstrip("/")
    named = set(pattern.split("/"))
    out = set()
    with remote_errors(raw, "--raw"):
        for name, info in fs.glob(f"{root}/{pattern}", detail=True).items():
            found = fs.find(name) if info["type"] == "directory" else [name]
            rels = (f[len(root) + 1:] for f in found)
            out.update(r for r in rels if not any(p.startswith(".") and p not in named for p in r.split("/")))
    # URLs spelled as --raw is (``Source.relpath`` cuts it off); in the order of the local
    # listing (``Path`` order), so the lineage lists the inputs alike
    return [f"{raw.rstrip('/')}/{r}" for r in sorted(out, key=lambda r: Path(r).parts)]


def load_recipe(path: str | Path, raw: str | Path) -> Recipe:
    file = read_recipe(path)
    path, text, data = file.path, file.text, file.data
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise CumedError(f"unknown key(s) {', '.join(sorted(unknown))} in recipe {path}; allowed: {', '.join(sorted(TOP_KEYS))}")
    for key in ("name", "sources"):
        if key not in data:
            raise CumedError(f"recipe {path} lacks {key!r}")
    name = validate_name(str(data["name"]))
    if is_url(raw):
        raw = str(raw).rstrip("/")
        check_reachable(raw, "raw data folder")
    else:
        raw = Path(raw)
        if not raw.is_dir():
            raise CumedError(f"raw data folder {raw} does not exist; pass --raw DIR or set CUMED_RAW")
    sources = []
    seen = set()
    for i, s in enumerate(data.get("sources") or []):
        where = f"{path}: sources[{i}]"
        if not isinstance(s, dict):
            raise CumedError(f"{where} must be a mapping")
        unknown = set(s) - SOURCE_KEYS
        if unknown:
            raise CumedError(f"unknown key(s) {', '.join(sorted(unknown))} in {where}; allowed: {', '.join(sorted(SOURCE_KEYS))}")
        for key in ("name", "reader", "path", "category"):
            if key not in s:
                raise CumedError(f"{where} lacks {key!r}")
        sname = str(s["name"])
        if not SOURCE_NAME_RE.match(sname):
            raise CumedError(f"bad source name {sname!r} in {where}; use lower-case letters, digits and '_'")
        if sname in seen:
            raise CumedError(f"duplicate source name {sname!r} in {where}")
        seen.add(sname)
        src = Source(
            name=sname, reader=str(s["reader"]), path=str(s["path"]), category=str(s["category"]),
            department=str(s.get("department") or ""), license=str(s.get("license") or ""),
            options=dict(s.get("options") or {}), enabled=bool(s.get("enabled", True)),
            description=str(s.get("description") or ""),
        )
        if src.enabled:
            src.root, pattern = source_root(raw, src.path)
            if is_url(src.root) and src.root != raw:
                check_reachable(str(src.root), f"source {sname!r} in {path}:")
            files = matching_files(src.root, pattern)
            if not files:
                raise CumedError(
                    f"source {sname!r} in {path}: no file matches {pattern!r} under {src.root}; check --raw / CUMED_RAW or the path"
                )
            src.files = files
        sources.append(src)
    if not any(s.enabled for s in sources):
        raise CumedError(f"recipe {path} has no enabled source")
    shards = int(data.get("shards", 8))
    if shards < 1:
        raise CumedError(f"shards must be >= 1 in {path}")
    return Recipe(
        path=path, name=name, kind=str(data.get("kind", "documents")), sources=sources,
        steps=dict(data.get("steps") or {}), shards=shards, tokenizer=data.get("tokenizer"),
        description=str(data.get("description") or ""), card=str(data.get("card") or ""), raw=raw, text=text,
    )
