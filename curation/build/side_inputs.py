"""Side inputs of a build: the files a step reads besides the sources, and the package versions
that decide its rows.

Why: a build's work folder is its resume key, and its lineage says what produced a version. Both
used to cover only the sources, the recipe and the code, so a re-run after an evaluation set or
the lexicon changed resumed from stage outputs made against the old files (a document that is
now an evaluation item stayed in the corpus), and nothing in the manifest said which files were
read. Each step that reads a file says which (a ``side_files`` method returning
``{"role", "name", "path", "root"}``); this module turns those into lineage entries with a
sha256, and lists the versions of the third-party packages a build ran with.

An entry's ``path`` is relative to the folder the step was given (``--raw``, or the lexicon's
``raw_dir``), so moving the raw folder changes nothing, and a builder's home folder never lands
in a shared store; a file outside it is named relative to its git repository (or by its name).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path

from cumed.hashing import sha256_file
from cumed.recipes import repo_relative

NOT_INSTALLED = "not installed"
# OpenCC's conversion tables ship as data files beside the package; a rebuilt wheel (or a
# hand-edited table) can change t2s output without a version bump, so they are hashed too.
OPENCC_DICTIONARIES = "opencc-dictionaries"
_DICTIONARY_SUFFIXES = {".json", ".ocd2", ".ocd", ".txt"}


def side_file(role: str, name: str, path: str | Path, root: str | Path | None, key: str | None = None) -> dict:
    """What a step's ``side_files`` returns for one file it reads (resolved by ``resolve``);
    ``key`` is the recipe key that names the file (for the error when it is missing)."""
    return {"role": role, "name": name, "path": Path(path), "root": Path(root) if root is not None else None,
            "key": key}


def resolve(files: list[dict]) -> list[dict]:
    """Lineage entries ``{role, name, path, sha256}`` for ``side_file`` dicts, in a stable order.

    A missing file is an error here, before any stage runs, naming the step's role and set and
    the recipe key to set."""
    out = []
    for f in files:
        path = Path(f["path"])
        if not path.is_file():
            where = f"set {f['key']} in the recipe (paths relative to --raw) or" if f.get("key") else "check the recipe or"
            raise FileNotFoundError(f"{f['role']} {f['name']!r}: {path} not found; {where} pass --raw (or CUMED_RAW) "
                                    "the folder holding it")
        out.append({"role": f["role"], "name": f["name"], "path": display_path(path, f.get("root")),
                    "sha256": sha256_file(path)})
    return sorted(out, key=lambda e: (e["role"], e["name"], e["path"]))


def display_path(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when under it, else relative to its git repository (see module doc)."""
    if root is not None:
        try:
            return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return repo_relative(Path(path))


def tokenizer_files(tokenizer: str | None, raw: Path | None) -> list[dict]:
    """The recipe's ``tokenizer:`` file (token counts in the stats and the card), if it names one."""
    return [side_file("tokenizer", Path(tokenizer).name, tokenizer, raw)] if tokenizer else []


# ------------------------------------------------------------------ dependency versions
@functools.cache
def _distributions() -> dict[str, list[str]]:
    """import name -> distribution names (``opencc`` is the ``OpenCC`` distribution, ``fasttext``
    may be ``fasttext-wheel``...): the version is asked of the distribution."""
    return importlib.metadata.packages_distributions()


def package_version(module: str) -> str:
    """The installed version of the distribution providing ``module`` (``importlib.metadata``).

    First the distribution named like the module, when it provides the module (``numpy``,
    ``pyarrow``, ``opencc``...): one metadata read. Only then ``packages_distributions()``, which
    reads the metadata of every installed distribution (0.3-0.5 s of each build here). Also
    ``py<module>`` (``ahocorasick`` is ``pyahocorasick``), checked the same way."""
    for name in (module, f"py{module}"):
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if module in _top_level(dist):
            return importlib.metadata.version(name)
    for dist in _distributions().get(module) or [module]:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return NOT_INSTALLED


def _top_level(dist) -> set[str]:
    """The import names a distribution installs: its ``top_level.txt``, else its files' first parts."""
    text = dist.read_text("top_level.txt")
    if text:
        return set(text.split())
    return {f.parts[0].split(".")[0] for f in dist.files or () if f.parts}


@functools.cache
def opencc_dictionaries_sha256() -> str:
    """sha256 over OpenCC's bundled configuration and dictionary files (names and bytes)."""
    spec = importlib.util.find_spec("opencc")
    if spec is None or not spec.origin:
        return NOT_INSTALLED
    root = Path(spec.origin).resolve().parent
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in _DICTIONARY_SUFFIXES):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def dependency_versions(modules) -> dict[str, str]:
    """``{import name: version}`` for ``modules`` (plus OpenCC's dictionaries' sha256 when OpenCC is one)."""
    out = {m: package_version(m) for m in set(modules)}
    if "opencc" in out:
        out[OPENCC_DICTIONARIES] = opencc_dictionaries_sha256()
    return dict(sorted(out.items()))


__all__ = ["dependency_versions", "display_path", "package_version", "resolve", "side_file", "tokenizer_files"]
