"""Dedup at the pretraining recipe's own settings on the planted set: recall on planted
near-copies (``plant``) and false merges of planted distinct-but-similar twins (``plant_distinct``).
``benchmarks/dedup_recall.py`` runs the same on the whole corpus (BENCHMARKS.md)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from curation.dedup import find_duplicates
from curation.dedup.canonical import canonical, codepoints, jaccard, ngram_sets
from curation.dedup.plant import (
    DISTINCT_KINDS,
    KINDS,
    false_merges,
    plant,
    plant_distinct,
    score,
    slot_lexicon,
    twin,
)
from curation.recipe import load_recipe
from tests.curation.test_dedup import RAW, needs_raw, real_docs

RECIPE = Path(__file__).resolve().parents[2] / "datasets" / "cumed-pretrain.yaml"


def recipe_dedup() -> dict:
    """The pretraining recipe's dedup options that decide (its default threshold among them)."""
    cfg = dict(load_recipe(RECIPE, RAW).step("dedup") or {})
    cfg.pop("tasks", None)
    return cfg


@pytest.fixture(scope="module")
def planted_run():
    opts = recipe_dedup()
    docs = real_docs()
    natural = find_duplicates(docs, **opts)
    busy = {d.id for d in natural} | {d.duplicate_of for d in natural}
    pool = [d for d in docs if d[0] not in busy]
    copies, truth = plant(pool, per_kind=40, seed=7)
    used = {o for _, o, _ in truth}
    toy = [d for d in pool if d[0].startswith("toyhom") and d[0] not in used and d[1].count("\n") >= 2]
    questions = [(f"{i}~question", "\n".join(t.split("\n")[:2])) for i, t in toy]
    lexicon = slot_lexicon(RAW)
    q_twins, q_truth = plant_distinct(questions, 40, lexicon, seed=7)
    c_twins, c_truth = plant_distinct(toy, 40, lexicon, seed=8)
    asked = {o for _, o, _ in q_truth}
    every = docs + copies + [q for q in questions if q[0] in asked] + q_twins + c_twins
    dec = find_duplicates(every, **opts)
    return opts, dict(every), dec, truth, q_truth + c_truth


@needs_raw
def test_recipe_dedup_threshold_is_the_library_default():
    from curation.dedup import DedupConfig

    assert recipe_dedup().get("threshold", DedupConfig().threshold) == DedupConfig().threshold == 0.75


@needs_raw
def test_recall_on_planted_copies_at_the_recipe_default(planted_run):
    _, _, dec, truth, _ = planted_run
    assert {k for *_, k in truth} == set(KINDS)
    s = score(dec, truth)
    assert s["recall"] >= 0.9, s
    assert all(s["per_kind"][k] >= 0.9 for k in KINDS), s
    assert s["precision"] >= 0.99, s


@needs_raw
def test_twins_change_only_the_slot():
    lexicon = slot_lexicon(RAW)
    text = "甘露醇糖尿病人能用吗\n我今年38岁，最近头痛，医生开了甘露醇，每次0.5g，甘露醇糖尿病人能用吗。"
    rng = random.Random(0)
    age = twin(text, rng, "age", lexicon)
    assert "38岁" not in age and age.split("今年")[0] == text.split("今年")[0]
    assert age.split("岁")[1:] == text.split("岁")[1:]  # nothing but the age changed
    dose = twin(text, rng, "dose", lexicon)
    assert "0.5g" not in dose and dose.count("g，") == 1
    drug = twin(text, rng, "drug", lexicon)
    assert "甘露醇" not in drug and drug.count("医生开了") == 1
    assert twin("没有剂量的文字", rng, "dose", lexicon) is None


@needs_raw
def test_a_twin_is_merged_exactly_when_its_jaccard_reaches_the_threshold(planted_run):
    """Which twins dedup merges is decided by the verified Jaccard, not by LSH luck: a twin is in
    its original's cluster iff their actual Jaccard is >= the recipe's threshold."""
    opts, text, dec, _, distinct = planted_run
    n = opts.get("n", 5)
    keeper = {d.id: d.duplicate_of for d in dec}
    for tid, oid, _ in distinct:
        a, b = ngram_sets([codepoints(canonical(text[tid])), codepoints(canonical(text[oid]))], n)
        merged = keeper.get(tid, tid) == keeper.get(oid, oid)
        assert merged == (jaccard(a, b) >= opts.get("threshold", 0.75)), (tid, jaccard(a, b))


@needs_raw
@pytest.mark.xfail(strict=True, reason=(
    "known limit, BENCHMARKS.md 'Dedup on the planted set and the decontamination rule (issue 17)': at the "
    "recipe's default (character 5-gram Jaccard >= 0.75) a question or consultation re-asked with another drug, "
    "dose, age or symptom is at Jaccard ~0.7-0.98 from its original, the range of the planted near-copies "
    "(char_noise from 0.78, median 0.87): no threshold separates them, and a content-aware check changes "
    "decisions on the real corpus (the lead decides)"))
def test_no_distinct_twin_is_merged(planted_run):
    _, _, dec, _, distinct = planted_run
    assert {k for *_, k in distinct} == set(DISTINCT_KINDS)
    fm = false_merges(dec, distinct)
    assert fm["merged"] == 0, fm["per_kind"]
