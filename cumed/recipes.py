"""Recipe files (``datasets/<name>.yaml``) as the foundation sees them: a name, a kind, the text
and where it came from. What a kind's recipe contains is its builder's business (curation for
documents and conversations, annotation for preferences); ``cumed build`` reads the kind here
and hands the file to that builder.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from cumed.errors import CumedError
from cumed.hashing import sha256_text

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RecipeFile:
    path: Path
    text: str
    data: dict

    @property
    def name(self) -> str:
        return str(self.data.get("name") or "")

    @property
    def kind(self) -> str:
        return str(self.data.get("kind") or "documents")

    @property
    def sha256(self) -> str:
        return sha256_text(self.text)

    def lineage(self) -> dict:
        return recipe_lineage(self.path, self.text)


def recipe_lineage(path: Path, text: str) -> dict:
    """How a manifest names a recipe: never an absolute path (it would leak the builder's home
    folder into a team store), but the file name, its path inside its repository and the sha256
    of its text (which is what identifies it)."""
    return {"name": Path(path).name, "path": repo_relative(path), "sha256": sha256_text(text)}


def repo_relative(path: Path) -> str:
    """``path`` relative to the git repository holding it, else to this repository, else its name."""
    path = Path(path).resolve()
    for root in (_git_root(path.parent), REPO_ROOT):
        if root is not None:
            try:
                return path.relative_to(root).as_posix()
            except ValueError:
                continue
    return path.name


@functools.cache  # a build names its recipe in the lineage and again in the card
def _git_root(folder: Path) -> Path | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=folder, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out.stdout.strip()).resolve() if out.returncode == 0 and out.stdout.strip() else None


def read_recipe(path: str | Path) -> RecipeFile:
    """Parse a recipe file far enough to know its name and kind; errors name the file and the fix."""
    path = Path(path)
    if not path.is_file():
        here = sorted(p.name for p in Path("datasets").glob("*.yaml")) if Path("datasets").is_dir() else []
        raise CumedError(f"recipe {path} not found" + (f"; recipes here: {', '.join(here)}" if here else ""))
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except UnicodeDecodeError as e:
        raise CumedError(f"recipe {path} is not UTF-8 text ({e}); save it as UTF-8") from e
    except yaml.YAMLError as e:
        raise CumedError(f"recipe {path} is not valid YAML: {e}".replace("\n", " ")) from e
    if not isinstance(data, dict):
        raise CumedError(f"recipe {path} must be a mapping with name, kind, sources, steps")
    return RecipeFile(path, text, data)


def find_recipe(name: str) -> Path:
    """A recipe shipped in the repository's ``datasets/`` folder (from the working directory or
    beside the packages)."""
    for base in (Path.cwd(), REPO_ROOT):
        p = base / "datasets" / f"{name}.yaml"
        if p.is_file():
            return p
    raise CumedError(f"recipe datasets/{name}.yaml not found; run from the cumed repository or pass the recipe's path")
