"""The conversations build runs the steps its recipe lists, prints them first and records them
in the lineage (``steps``), in the form of the documents build (issue #17)."""

from __future__ import annotations

import json

import pytest
import yaml

from cumed.errors import CumedError
from curation.recipe import load_recipe
from curation.sft.build import build_conversations, resolved_steps

from .conftest import RECIPE


def test_the_shipped_recipe_resolves_to_the_steps_it_lists(raw_root):
    steps = resolved_steps(load_recipe(RECIPE, raw_root))
    assert [e["step"] for e in steps] == ["normalize", "pii", "department", "decontaminate", "dedup", "splits"]
    by = {e["step"]: e["options"] for e in steps}
    assert by["decontaminate"] == {"eval_sets": ["huatuo26m_test", "cmb_clin", "disc_eval"], "near_threshold": 0.75}
    assert by["department"]["select"] == "urology_andrology"
    assert by["dedup"] == {"threshold": 0.75} and by["splits"]["seed"] == "cumed-sft"
    # pack is listed with enabled: false, so it does not run and is not listed


def _recipe(tmp_path, steps) -> tuple:
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = "ask,answer\n" + "".join(f"我的电话是1391234567{i}，第{i}次发烧怎么办,多喝水第{i}次\n" for i in range(6))
    (raw / "qa.csv").write_text(rows + "我的电话是13912345670，第0次发烧怎么办,多喝水第0次\n", encoding="utf-8")
    data = {"name": "sft-steps", "kind": "conversations", "steps": steps,
            "sources": [{"name": "qa", "reader": "conv_csv", "path": "qa.csv", "category": "qa",
                         "options": {"template": "[[user]]{ask}[[assistant]]{answer}"}}]}
    path = tmp_path / "sft-steps.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path, raw


def test_lineage_records_and_stderr_prints_the_steps_that_ran(tmp_path, capsys):
    path, raw = _recipe(tmp_path, {"normalize": {}, "pii": False, "dedup": {}, "pack": {"enabled": False}})
    dv, stats = build_conversations(path, raw, tmp_path / "store", progress=True)
    expected = [{"step": "normalize", "options": {}}, {"step": "department", "options": {"select": "all"}},
                {"step": "dedup", "options": {}}, {"step": "splits", "options": {}}]
    assert dv.manifest["lineage"]["steps"] == expected
    assert resolved_steps(load_recipe(path, raw)) == expected
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "sft-steps: steps: normalize; department(select=all); dedup; splits"
    # pii: false did not run (the phone numbers are still there); dedup ran (the repeated row went)
    texts = [m["content"] for r in dv.to_arrow(columns=["messages"]).column("messages").to_pylist() for m in r]
    assert any("13912345671" in t for t in texts)
    assert stats["removed_by_reason"] == {"dedup/exact_duplicate": 1}
    assert json.loads(json.dumps(dv.manifest["lineage"]["steps"])) == expected


def test_a_step_given_as_a_scalar_is_a_named_error(tmp_path):
    path, raw = _recipe(tmp_path, {"dedup": 0.75})
    with pytest.raises(CumedError, match=r"steps.dedup in .* is 0.75; give its options as a mapping"):
        build_conversations(path, raw, tmp_path / "store", progress=False)
