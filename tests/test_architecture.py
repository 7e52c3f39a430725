"""The package layout's rules, read from the code's own imports (docs/design.md, "Packages").

cumed (the foundation: store, schemas, errors, atomic writes, ids, evaluation sets, lineage) imports
no wing; curation imports only the foundation; annotation the foundation and curation (for the
curation steps it really uses); training the foundation only; the CLI (``cumed.cli``) stands above
all of them. Every import counts, module-level or inside a function (a lazy import is still a
dependency), and so does a module named in a string for ``__import__``/``importlib``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cumed", "curation", "annotation", "training")
CLI = "cumed.cli"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(name: str, modules: dict) -> str | None:
    """The longest prefix of a dotted name that is one of our modules."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        cand = ".".join(parts[:k])
        if cand in modules:
            return cand
    return None


def _imports(mod: str, path: Path, modules: dict) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # ``from pkg import submodule`` depends on the submodule, not on pkg's __init__
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.split(".")[0] in PACKAGES:
            if _resolve(node.value, modules) == node.value and "." in node.value:
                names = [node.value]  # a module named in a string (plugin loading by name)
        for n in names:
            target = _resolve(n, modules)
            if target and target != mod:
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def _wing(mod: str) -> str:
    return "cli" if mod == CLI or mod.startswith(CLI + ".") else mod.split(".")[0]


ALLOWED = {
    "cumed": {"cumed"},
    "curation": {"cumed", "curation"},
    "annotation": {"cumed", "curation", "annotation"},
    "training": {"cumed", "training"},
    "cli": {"cumed", "curation", "annotation", "training", "cli"},
}


def test_every_import_follows_the_layers(graph):
    bad = sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts if _wing(t) not in ALLOWED[_wing(m)])
    assert not bad, "imports across the layers (docs/design.md, Packages):\n" + "\n".join(bad)


def test_the_graph_is_read_at_all(graph):
    # the rule above must not pass because the reader found nothing
    assert "cumed.store" in graph["curation.build"] or any(t.startswith("cumed.store") for t in graph["curation.build"])
    assert any(t.startswith("training.") for t in graph["cumed.cli.train_cmd"])
    assert "curation.steps.quality" in graph["curation.build.steps"]  # a lazy import inside a function counts


def test_no_two_modules_import_each_other(graph):
    pairs = sorted({tuple(sorted((a, b))) for a, ts in graph.items() for b in ts if a in graph.get(b, ())})
    assert not pairs, f"modules importing each other: {pairs}"


def test_no_import_cycles(graph):
    seen: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles = []

    def visit(m, stack):
        seen[m] = 1
        for t in sorted(graph.get(m, ())):
            if seen.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in seen:
                visit(t, stack + [t])
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_curation_never_names_training():
    hits = [str(p.relative_to(ROOT)) for p in (ROOT / "curation").rglob("*.py")
            if any(isinstance(n, ast.Constant) and isinstance(n.value, str) and "training." in n.value
                   or isinstance(n, (ast.Import, ast.ImportFrom)) and "training" in ast.unparse(n)
                   for n in ast.walk(ast.parse(p.read_text(encoding="utf-8"))))]
    assert not hits, f"curation names training in: {hits}"


def test_store_alone_loads_no_heavy_framework():
    code = ("import sys, json; import cumed.store; from cumed.store import Store, DatasetVersion; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                                           cwd=ROOT).stdout))
    assert "pyarrow" in loaded  # the probe ran the import
    assert not loaded & {"datatrove", "torch", "transformers", "curation", "annotation", "training"}, loaded


def test_datasets_folder_is_never_a_package():
    assert not (ROOT / "datasets" / "__init__.py").exists()


def test_every_source_file_is_tracked_by_git():
    """An ignore rule once hid cumed/store/ and curation/build/ (`store/`, `build/` unanchored):
    the suite passed here and a fresh clone could not import the store."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "ls-files", "--others", "--ignored", "--exclude-standard", "--", *PACKAGES, "tests"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    hidden = [f for f in ignored if f.endswith(".py")]
    assert not hidden, f"source files that git ignores (fix .gitignore): {hidden}"
