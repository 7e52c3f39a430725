"""The dataset cards state the decontamination rule with the recipe's own values (issue #17)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from curation.build.card import decontamination_defaults, render_card
from curation.recipe import Recipe

DATASETS = Path(__file__).resolve().parents[2] / "datasets"
STATS = {"tokenizer": "characters", "sources": {}, "removed_by_reason": {"decontaminate:eval_overlap": 2, "dedup": 9}}


def recipe_from(path: Path, steps: dict | None = None) -> Recipe:
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return Recipe(path=path, name=data["name"], kind=data["kind"], sources=[],
                  steps=data["steps"] if steps is None else steps, text=text)


def pretrain(decontaminate) -> Recipe:
    steps = dict(yaml.safe_load((DATASETS / "cumed-pretrain.yaml").read_text(encoding="utf-8"))["steps"])
    steps["decontaminate"] = decontaminate
    return recipe_from(DATASETS / "cumed-pretrain.yaml", steps)


def section(card: str) -> str:
    return card.split("## Decontamination", 1)[1].split("\nRecipe:", 1)[0]


def test_pretraining_card_states_the_coverage_rule_and_the_measurement():
    card = render_card(recipe_from(DATASETS / "cumed-pretrain.yaml"), STATS)
    text = section(card)
    d = decontamination_defaults()
    assert (d["min_spans"], d["min_coverage"], d["n"]) == (50, 0.5, 20)  # the step's own defaults
    assert "**coverage rule**" in text
    assert "at least 50 distinct 20-character spans" in text and "at least 0.5 of that item's spans" in text
    assert "huatuo26m_test, cmb_clin, disc_eval" in text
    assert "1,368 of the 7,644 real Toyhom consultations (17.9 %" in text and "removes 2 of" in text
    assert "`decontaminate: {min_spans: null, min_coverage: null}`" in text
    assert "This build: 2 removed (decontaminate:eval_overlap 2)." in text
    assert "eval_near_copy" not in text  # the documents build has no near-copy check


def test_card_says_strict_when_the_recipe_asks_for_the_single_span_rule():
    text = section(render_card(pretrain({"min_spans": None, "min_coverage": None}), STATS))
    assert "**strict (single span)**" in text and "shares any one 20-character span" in text
    assert "**coverage rule**" not in text


def test_card_does_not_call_min_spans_null_alone_strict():
    # min_spans: null keeps min_coverage (0.5): fewer removals than the default, not the strict rule
    text = section(render_card(pretrain({"min_spans": None}), STATS))
    assert "**item coverage only**" in text and "not the strict rule" in text and "strict (single span)" not in text


@pytest.mark.parametrize("options, expected", [
    ({"min_spans": 30, "n": 25, "min_coverage": 0.8}, "at least 30 distinct 25-character spans"),
    ({"min_spans": 30, "n": 25, "min_coverage": 0.8}, "at least 0.8 of that item's spans"),
    ({"min_coverage": None}, "**shared spans only**: a document is removed when it shares at least 50 distinct"),
    ({"max_items_per_span": 7}, "more than 7 items is template text"),
    ({"eval_sets": ["cmb_clin"]}, "Evaluation sets: cmb_clin. Rule:"),
])
def test_card_uses_the_recipe_values(options, expected):
    assert expected in section(render_card(pretrain(options), STATS))


def test_no_section_when_the_recipe_does_not_decontaminate():
    assert "## Decontamination" not in render_card(pretrain(False), STATS)


def test_conversations_card_states_the_rule_and_the_near_copy_check():
    from curation.sft.build import render_card as sft_card

    stats = {"tokenizer": "characters", "sources": {},
             "removed_by_reason": {"decontaminate/eval_overlap": 3, "decontaminate/eval_near_copy": 1}}
    text = section(sft_card(recipe_from(DATASETS / "cumed-sft.yaml"), stats))
    assert "**coverage rule**" in text and "1,368 of the 7,644" in text
    assert "near-duplicate check at threshold 0.75" in text and "eval_near_copy" in text
    assert "This build: 4 removed (decontaminate/eval_near_copy 1, decontaminate/eval_overlap 3)." in text
