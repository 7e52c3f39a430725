"""Dataset recipes: ``datasets/<name>.yaml`` parsed, validated and resolved against ``--raw``.

A recipe names its sources (a reader, a path relative to the raw root, a Table-1 category)
and its steps. Validation happens before any work starts and names the recipe file, the
source and the key, with the allowed choices.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cumed.errors import CumedError
from cumed.hashing import sha256_file, sha256_text
from cumed.lineage import config_hash as hash_config
from cumed.recipes import read_recipe, recipe_lineage
from cumed.store import validate_name

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
    files: list[Path] = field(default_factory=list)


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
    raw: Path | None = None
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
                out.append({"source": s.name, "path": str(f.relative_to(self.raw)), "bytes": f.stat().st_size,
                            "sha256": sha256_file(f)})
        return out


def matching_files(raw: Path, pattern: str) -> list[Path]:
    """The files a source path names under ``raw``: a file, a glob, or a folder (every file under
    it, hidden ones excepted: a saved ``datasets`` folder, a folder of shards)."""
    out = set()
    for p in map(Path, glob.glob(str(raw / pattern), recursive=True)):
        if p.is_file():
            out.add(p)
        elif p.is_dir():
            out.update(f for f in p.rglob("*") if f.is_file() and not any(
                part.startswith(".") for part in f.relative_to(p).parts))
    return sorted(out)


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
            files = matching_files(raw, src.path)
            if not files:
                raise CumedError(
                    f"source {sname!r} in {path}: no file matches {src.path!r} under {raw}; check --raw / CUMED_RAW or the path"
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
