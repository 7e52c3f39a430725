"""One road into the store: every recipe in datasets/ builds with `cumed build RECIPE`, and every
kind's manifest carries the same lineage keys (docs/design.md, "Manifest")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cumed.store import Store
from cumed.store.manifest import LINEAGE_KEYS

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from cumed.cli import main; sys.argv[0] = 'cumed'; main()"]


def cumed(*args, cwd=REPO, check=True) -> subprocess.CompletedProcess:
    p = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=600)
    if check:
        assert p.returncode == 0, p.stderr[-2000:]
    return p


def test_every_recipe_in_datasets_is_a_cumed_build_recipe():
    from cumed.cli.build_cmd import KINDS

    kinds = {p.name: yaml.safe_load(p.read_text(encoding="utf-8"))["kind"] for p in (REPO / "datasets").glob("*.yaml")}
    assert kinds == {"cumed-pretrain.yaml": "documents", "cumed-sft.yaml": "conversations",
                     "cumed-rm.yaml": "preferences"}
    assert set(kinds.values()) <= set(KINDS)


def test_rm_recipe_builds_what_the_rank_commands_publish(raw_root, tmp_path):
    """`cumed build datasets/cumed-rm.yaml` == `cumed rank import-disc` + `cumed rank pairs` (same bytes)."""
    by_recipe = json.loads(cumed("build", "datasets/cumed-rm.yaml", "--raw", str(raw_root), "--store",
                                 str(tmp_path / "a"), "--json").stdout)
    assert by_recipe["ref"] == "cumed-rm@1" and by_recipe["kind"] == "preferences" and by_recipe["rows"] > 2000
    rankings = json.loads(cumed("rank", "import-disc", "--raw", str(raw_root), "--store", str(tmp_path / "b"),
                                "--json").stdout)
    pairs = json.loads(cumed("rank", "pairs", rankings["ref"], "--store", str(tmp_path / "b"), "--json").stdout)
    a, b = Store(tmp_path / "a"), Store(tmp_path / "b")
    assert a.get("cumed-rm@1").content_hash == b.get(pairs["ref"]).content_hash == by_recipe["content_hash"]
    assert a.get("disc-rankings@1").content_hash == b.get(rankings["ref"]).content_hash
    lineage = a.get("cumed-rm@1").manifest["lineage"]
    assert lineage["parents"] == ["disc-rankings@1"] and lineage["recipe"]["path"] == "datasets/cumed-rm.yaml"
    assert lineage["recipe"]["sha256"] == Store(tmp_path / "a").get("disc-rankings@1").manifest["lineage"]["recipe"]["sha256"]
    # a second build of the same recipe is the same version, not a new one
    again = json.loads(cumed("build", "datasets/cumed-rm.yaml", "--raw", str(raw_root), "--store",
                             str(tmp_path / "a"), "--json").stdout)
    assert again["ref"] == "cumed-rm@1"


def test_bad_preferences_recipe_is_one_line_naming_file_and_key(raw_root, tmp_path):
    data = yaml.safe_load((REPO / "datasets" / "cumed-rm.yaml").read_text(encoding="utf-8"))
    data["pairs"]["margins"] = "auto"  # a typo of `margin`
    bad = tmp_path / "bad-rm.yaml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    p = cumed("build", str(bad), "--raw", str(raw_root), "--store", str(tmp_path / "s"), check=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert str(bad) in p.stderr and "margins" in p.stderr and "pairs" in p.stderr and "allowed" in p.stderr
    data["pairs"].pop("margins")
    data["rankings"]["method"] = "by_vibes"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    p = cumed("build", str(bad), "--raw", str(raw_root), "--store", str(tmp_path / "s"), check=False)
    assert p.returncode == 1 and "by_vibes" in p.stderr and "gpt4_score" in p.stderr
    assert not (tmp_path / "s" / "cumed-rm").exists()  # nothing published from a bad recipe


def test_manifests_of_every_kind_share_the_lineage_keys(tmp_path, raw_root):
    """documents (datatrove build), conversations (in-process build) and preferences: the same keys,
    each filled with what applies (code hash, executor, recipe by name, relative path and sha256)."""
    from cumed.cli.build_cmd import build_recipe
    from tests.curation.test_build import write_recipe, write_tiny_raw

    st = Store(tmp_path / "store")
    write_tiny_raw(tmp_path / "raw")
    docs, _ = build_recipe(write_recipe(tmp_path / "tiny.yaml"), tmp_path / "raw", st, workers=1,
                           work_root=tmp_path / "work", progress=False)
    conv_recipe = yaml.safe_load((REPO / "datasets" / "cumed-sft.yaml").read_text(encoding="utf-8"))
    conv_recipe["sources"] = [s for s in conv_recipe["sources"] if s["name"] == "medicalgpt_sft_1k"]
    conv_recipe["name"] = "sft-small"
    (tmp_path / "sft-small.yaml").write_text(yaml.safe_dump(conv_recipe, allow_unicode=True), encoding="utf-8")
    conv, _ = build_recipe(tmp_path / "sft-small.yaml", raw_root, st, progress=False)
    prefs, _ = build_recipe(REPO / "datasets" / "cumed-rm.yaml", raw_root, st, progress=False)

    lineages = {dv.kind: dv.manifest["lineage"] for dv in (docs, conv, prefs)}
    assert set(lineages) == {"documents", "conversations", "preferences"}
    # the common keys first, in one order, then a kind's own: both curation builds add the side
    # inputs they read, the dependency versions and their resolved step list; preferences its
    # ranking method and options
    assert tuple(lineages["documents"]) == tuple(lineages["conversations"])
    assert [e["step"] for e in lineages["conversations"]["steps"]] == [
        "normalize", "pii", "department", "decontaminate", "dedup", "splits"]
    assert tuple(lineages["documents"])[len(LINEAGE_KEYS):] == ("side_inputs", "dependencies", "steps")
    for lin in lineages.values():
        assert tuple(lin)[: len(LINEAGE_KEYS)] == LINEAGE_KEYS
    for kind, lin in lineages.items():
        assert len(lin["code_sha256"]) == 64, kind
        assert lin["executor"] in ("local", "in-process"), kind
        assert set(lin["recipe"]) == {"name", "path", "sha256"}, kind
        assert not Path(lin["recipe"]["path"]).is_absolute(), kind  # no builder's home folder in a team store
        assert len(lin["config_hash"]) == 64, kind
    assert lineages["documents"]["executor"] == "local" and lineages["conversations"]["executor"] == "in-process"
    assert lineages["conversations"]["recipe"] == {"name": "sft-small.yaml", "path": "sft-small.yaml",
                                                   "sha256": lineages["conversations"]["recipe"]["sha256"]}
    assert {i["source"] for i in lineages["conversations"]["inputs"]} == {"medicalgpt_sft_1k"}
    assert all(len(i["sha256"]) == 64 for i in lineages["conversations"]["inputs"])
    assert lineages["preferences"]["recipe"]["path"] == "datasets/cumed-rm.yaml"
    # the card does not carry an absolute path either
    assert str(tmp_path) not in conv.card() and str(tmp_path) not in docs.card()


@pytest.mark.parametrize("recipe", ["cumed-pretrain.yaml", "cumed-sft.yaml", "cumed-rm.yaml"])
def test_recipe_lineage_names_the_repository_path_not_the_absolute_one(recipe):
    from cumed.recipes import read_recipe

    lin = read_recipe(REPO / "datasets" / recipe).lineage()
    assert lin["name"] == recipe and lin["path"] == f"datasets/{recipe}" and len(lin["sha256"]) == 64
