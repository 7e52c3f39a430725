"""Dedup at the pretraining recipe's own settings on the issue #17 planted set ("Recall at the
default threshold"): recall per alteration on planted near-copies (``plant``: 3 % character edits,
any sentence dropped, sentences swapped, a disclaimer, Traditional script, short texts included),
no merged distinct questions among those that share a templated doctor answer
(``templated_answer_pairs``, Huatuo-26M test and Toyhom), and false merges of the stricter
twins (``plant_distinct``). ``benchmarks/dedup_recall.py`` runs the same on the whole corpus
(BENCHMARKS.md)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from curation.dedup import DedupConfig, find_duplicates
from curation.dedup.canonical import canonical_batch, ngram_shingles, uncovered
from curation.dedup.core import verify_options, verify_pair
from curation.dedup.plant import (
    DISTINCT_KINDS,
    KINDS,
    false_merges,
    huatuo_qa,
    last_line_qa,
    merged_pairs,
    plant,
    plant_distinct,
    score,
    slot_lexicon,
    templated_answer_pairs,
    twin,
)
from curation.recipe import load_recipe
from tests.curation.test_dedup import RAW, needs_raw, real_docs

RECIPE = Path(__file__).resolve().parents[2] / "datasets" / "cumed-pretrain.yaml"


def recipe_dedup() -> dict:
    """The pretraining recipe's dedup options that decide (its threshold and rule among them)."""
    cfg = dict(load_recipe(RECIPE, RAW).step("dedup") or {})
    cfg.pop("tasks", None)
    return cfg


def shingles(*texts: str, n: int = 5):
    cps, lens = canonical_batch(list(texts))
    return ngram_shingles(list(np.split(cps, np.cumsum(lens)[:-1])), n)


@pytest.fixture(scope="module")
def issue_run():
    """Real consultations and cards, copies planted the issue's way, the issue's negatives and the
    twins, deduplicated under the recipe's rule and under the rule before (``jaccard``)."""
    opts = recipe_dedup()
    before = {**opts, "verify": "jaccard"}
    docs = real_docs(n_toyhom=10_000, n_disease=3000)
    busy = {x for o in (opts, before) for d in find_duplicates(docs, **o) for x in (d.id, d.duplicate_of)}

    hq = huatuo_qa(RAW)
    neg = templated_answer_pairs(hq) + templated_answer_pairs(last_line_qa([d for d in docs if d[0].startswith("toyhom")]))
    in_neg = {x for p in neg for x in p[:2]}
    hq_docs = [(i, f"{q}\n{a}") for i, q, a in hq if i in in_neg]

    pool = [d for d in docs if d[0] not in busy and d[0] not in in_neg]
    copies, truth = plant(pool, per_kind=100, seed=7, min_chars=50)
    used = {o for _, o, _ in truth} | in_neg
    toy = [d for d in pool if d[0].startswith("toyhom") and d[0] not in used and d[1].count("\n") >= 2]
    questions = [(f"{i}~question", "\n".join(t.split("\n")[:2])) for i, t in toy]
    lexicon = slot_lexicon(RAW)
    q_twins, q_truth = plant_distinct(questions, 40, lexicon, seed=7)
    c_twins, c_truth = plant_distinct(toy, 40, lexicon, seed=8)
    asked = {o for _, o, _ in q_truth}
    every = docs + copies + hq_docs + [q for q in questions if q[0] in asked] + q_twins + c_twins
    return {"opts": opts, "text": dict(every), "truth": truth, "neg": neg, "distinct": q_truth + c_truth,
            "dec": find_duplicates(every, **opts), "dec_before": find_duplicates(every, **before)}


# ----------------------------------------------------------------------------- the rule itself
def test_a_character_is_uncovered_when_no_ngram_around_it_is_shared():
    """``uncovered`` against its definition, on random texts over a small alphabet (many repeats)."""
    rng = random.Random(0)
    for _ in range(400):
        n = rng.choice([3, 5])
        a = "".join(rng.choice("甲乙丙丁戊己庚辛") for _ in range(rng.randrange(0, 30)))
        b = "".join(rng.choice("甲乙丙丁戊己庚辛") for _ in range(rng.randrange(1, 30)))
        sa, sb = shingles(a, b, n=n)
        grams_b = {b[i : i + n] for i in range(len(b) - n + 1)} if len(b) >= n else {b}
        if len(a) < n:
            unc = [a not in grams_b] * len(a)
        else:
            unc = [not any(a[s : s + n] in grams_b for s in range(max(0, i - n + 1), min(i, len(a) - n) + 1))
                   for i in range(len(a))]
        runs = "".join("1" if u else "0" for u in unc).split("0")
        assert uncovered(sa, sb, n) == (sum(unc), max(map(len, runs)))


def test_edits_uncover_themselves_and_a_passage_uncovers_whole():
    text = "患者男，45岁，反复上腹部疼痛三年，进食后加重，伴反酸嗳气，胃镜提示慢性萎缩性胃炎，幽门螺杆菌阳性。"
    edited = text.replace("疼痛", "疼病", 1).replace("胃镜", "胃境", 1)  # two characters substituted, far apart
    a, b = shingles(text, edited)
    assert uncovered(a, b, 5) == (2, 1) and uncovered(b, a, 5) == (2, 1)
    close = text.replace("疼痛", "疼病", 1).replace("进食", "近食", 1)  # 3 apart: the gap between is uncovered too
    a, b = shingles(text, close)
    assert uncovered(a, b, 5) == (4, 4)
    longer = text + "以上回答仅供参考，具体请遵医嘱。"
    a, b = shingles(text, longer)
    assert uncovered(a, b, 5) == (0, 0) and uncovered(b, a, 5)[1] == len("以上回答仅供参考具体请遵医嘱")


def test_verify_pair_coverage_against_jaccard():
    cfg, before = DedupConfig(), DedupConfig(verify="jaccard")
    answer = ("你好，根据你说的情况，初步分析有可能是胃肠型感冒或者是休息不好，劳累，供血不足等因素引起的，要注意多休息，"
              "清淡饮食，保持充足睡眠。建议先吃点藿香正气胶囊治疗试试，如果病情严重，要及时就医检查治疗，祝早日恢复健康。"
              "生殖器和肛周为尖锐湿疣好发部位，男性多见于包皮、系带、冠状沟、龟头、尿道口、阴茎体、肛周、直肠内和阴囊，"
              "女性多见于大小阴唇、后联合、前庭、阴蒂、宫颈和肛周。偶可见于阴部及肛周以外的部位，如腋窝、脐窝、口腔、"
              "乳房和趾间等。损害初起为细小淡红色丘疹，以后逐渐增大增多，单个或群集分布，湿润柔软，表面凹凸不平。")
    # 3 % scattered edits: below the Jaccard threshold, found by coverage
    rng = random.Random(3)
    chars = list(answer)
    for p in rng.sample(range(len(chars)), round(0.03 * len(chars))):
        chars[p] = "鑫"
    a, b = shingles(answer, "".join(chars))
    j, dup = verify_pair(a, b, cfg)
    assert j < 0.75 and dup and not verify_pair(a, b, before)[1]
    # the same long stock answer under two distinct questions: Jaccard >= 0.75, both have a question of their own
    a, b = shingles("心慌，恶心，逆时针旋转，这是怎么回事？\n" + answer, "宝宝三个月了昨晚突然发烧还吐奶怎么办\n" + answer)
    j, dup = verify_pair(a, b, cfg)
    assert j >= 0.75 and not dup and verify_pair(a, b, before)[1]
    # symmetric (the bucketed stage 2 verifies (a, b), the single task (visited, kept))
    assert verify_pair(a, b, cfg) == verify_pair(b, a, cfg)
    # a short text inside a long one is not its copy
    a, b = shingles(answer[:60], answer)
    assert not verify_pair(a, b, cfg)[1]


def _plain_verify(a, b, cfg: DedupConfig) -> tuple[float, bool]:
    """The verification rule (``DedupConfig``) in plain Python, position by position: the
    definition that ``verify_pairs`` vectorises."""
    grams_a, grams_b = set(a.grams.tolist()), set(b.grams.tolist())
    union = len(grams_a | grams_b)
    j = len(grams_a & grams_b) / union if union else 1.0
    if cfg.verify == "jaccard":
        return j, j >= cfg.threshold

    def uncovered_runs(x, other):
        covered = [False] * x.length
        for s, g in enumerate(x.inv.tolist()):
            if x.grams[g] in other:
                covered[s : s + cfg.n] = [True] * len(covered[s : s + cfg.n])
        runs = "".join("0" if c else "1" for c in covered).split("0")
        return covered.count(False), max(map(len, runs))

    (ua, ra), (ub, rb) = uncovered_runs(a, grams_b), uncovered_runs(b, grams_a)
    ca = 1 - ua / a.length if a.length else 1.0
    cb = 1 - ub / b.length if b.length else 1.0
    lo, hi = min(ca, cb), max(ca, cb)
    if lo >= cfg.cover_both or (hi >= cfg.cover_one and lo >= cfg.cover_other):
        return j, True
    own = (ra >= max(cfg.passage_chars, cfg.passage_share * a.length)
           and rb >= max(cfg.passage_chars, cfg.passage_share * b.length))
    return j, j >= cfg.threshold and not own


@needs_raw
def test_verify_pairs_is_verify_pair_and_the_plain_rule_pair_by_pair():
    """The batched verification (compiled, many pairs per call, as both stage 2 paths run it) gives,
    bit for bit, the Jaccard and decision of ``verify_pair`` and of the rule written out in plain
    Python, under either rule, on the real LSH candidate pairs of cards and consultations with
    planted copies (every band collision, before the estimate filter: near and far pairs), random
    pairs, and empty and short texts."""
    import importlib

    from curation.dedup.core import band_hashes, candidate_pairs, signatures, split_pairs, verify_pairs

    canon = importlib.import_module("curation.dedup.canonical")  # not the function ``dedup.canonical``
    docs = real_docs(n_toyhom=1500, n_disease=1500)
    copies, _ = plant(docs, per_kind=30, seed=11, min_chars=50)
    texts = [t for _, t in docs + copies] + ["", "甲", "甲乙丙丁", "甲乙丙丁戊", "甲乙丙丁戊甲乙丙丁戊", "！！"]
    cps, lens = canonical_batch(texts)
    cfg = DedupConfig()
    bands = band_hashes(signatures(cps, lens, cfg), cfg)
    found = [candidate_pairs(bands[:, k], np.arange(len(texts)), cfg) for k in range(cfg.bands)]
    a, b = split_pairs(np.unique(np.concatenate(found)))
    rng = np.random.default_rng(0)
    odd = np.arange(len(texts) - 6, len(texts))
    a = np.concatenate([a, rng.integers(0, len(texts), 1500), odd, np.repeat(odd, 6)])
    b = np.concatenate([b, rng.integers(0, len(texts), 1500), rng.integers(0, len(texts), 6), np.tile(odd, 6)])
    assert len(a) >= 3000

    sh = canon.shingle_batch(cps, lens, cfg.n)
    for cfg in (DedupConfig(), DedupConfig(verify="jaccard")):
        sim, dup = verify_pairs(sh, a, b, cfg)
        assert 100 <= dup.sum() < len(a) - 100
        for i, j, s, d in zip(a.tolist(), b.tolist(), sim.tolist(), dup.tolist()):
            one = verify_pair(sh.text(i), sh.text(j), cfg)
            assert one == _plain_verify(sh.text(i), sh.text(j), cfg) == (s, d), (cfg.verify, i, j)
            assert type(one[0]) is float and type(one[1]) is bool


def test_verify_options_as_a_recipe_writes_them():
    assert verify_options(None)["verify"] == "coverage"
    assert verify_options("jaccard")["verify"] == "jaccard"
    got = verify_options({"rule": "coverage", "cover_both": 0.9})
    assert got["cover_both"] == 0.9 and got["cover_one"] == DedupConfig().cover_one
    with pytest.raises(ValueError, match="cover_all"):
        verify_options({"cover_all": 0.9})
    with pytest.raises(ValueError, match="one of"):
        DedupConfig(verify="minhash")
    assert len(find_duplicates([("a", "高血压患者应该怎么办，需要吃什么药"), ("b", "高血压患者应该怎么办，需要吃什么药？")],
                               verify={"rule": "jaccard"})) == 1


# ----------------------------------------------------------------------------- the planted set
@needs_raw
def test_recipe_dedup_uses_the_library_defaults():
    cfg = recipe_dedup()
    assert cfg.get("threshold", DedupConfig().threshold) == DedupConfig().threshold == 0.75
    assert cfg.get("verify", DedupConfig().verify) == DedupConfig().verify == "coverage"


@needs_raw
def test_the_planted_set_is_the_issues(issue_run):
    """The misses of the issue are there: short texts, and the rule before finds < 90 % of the
    3 % character edits."""
    text, truth = issue_run["text"], issue_run["truth"]
    assert {k for *_, k in truth} == set(KINDS) and len(truth) == 100 * len(KINDS)
    assert sum(len(text[o]) < 200 for _, o, _ in truth) >= 0.2 * len(truth)
    before = score(issue_run["dec_before"], truth)
    assert before["per_kind"]["char_edit_3pct"] < 0.9, before


@needs_raw
def test_recall_per_alteration_at_the_recipe_default(issue_run):
    s = score(issue_run["dec"], issue_run["truth"])
    assert all(s["per_kind"][k] >= 0.9 for k in KINDS), s
    assert s["recall"] >= 0.95, s
    assert s["precision"] >= 0.99, s


@needs_raw
def test_no_distinct_question_sharing_a_templated_answer_is_merged(issue_run):
    neg = issue_run["neg"]
    assert len(neg) >= 300 and sum(p[0].startswith("huatuo") for p in neg) >= 50
    assert max(p[2] for p in neg) == 1.0  # identical answers among them
    assert merged_pairs(issue_run["dec"], neg) == []
    # the rule before merged some (Huatuo-26M test items whose stock answer dwarfs the question)
    assert merged_pairs(issue_run["dec_before"], neg)


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
def test_a_twin_is_merged_exactly_when_the_verification_accepts_it(issue_run):
    """Which twins dedup merges is decided by the verification (``verify_pair``), not by LSH luck:
    a twin is in its original's cluster iff the pair is accepted, unless one of the two went to a
    third document (a question alone inside its own consultation, which is in the corpus too)."""
    text, dec = issue_run["text"], issue_run["dec"]
    cfg = DedupConfig(**issue_run["opts"])
    keeper = {d.id: d.duplicate_of for d in dec}
    elsewhere = 0
    for tid, oid, _ in issue_run["distinct"]:
        a, b = shingles(text[tid], text[oid])
        merged = keeper.get(tid, tid) == keeper.get(oid, oid)
        accepted = verify_pair(a, b, cfg)[1]
        if accepted and not merged and {keeper.get(tid, tid), keeper.get(oid, oid)} - {tid, oid}:
            elsewhere += 1
            continue
        assert merged == accepted, tid
    assert elsewhere <= 0.02 * len(issue_run["distinct"])


@needs_raw
@pytest.mark.xfail(strict=True, reason=(
    "known limit, BENCHMARKS.md 'Dedup on the planted set and the decontamination rule (issue 17)': a question "
    "or consultation re-asked with another drug, dose, age or symptom differs from its original by a few "
    "characters, as a copy with 3 % character edits does (Jaccard ~0.7-0.98, covered >= 0.95): character "
    "similarity cannot tell another drug from a typo; a content-aware check would change decisions on the real "
    "corpus (the lead decides)"))
def test_no_distinct_twin_is_merged(issue_run):
    distinct = issue_run["distinct"]
    assert {k for *_, k in distinct} == set(DISTINCT_KINDS)
    fm = false_merges(issue_run["dec"], distinct)
    assert fm["merged"] == 0, fm["per_kind"]


# ----------------------------------------------------------------------------- the staged paths
@needs_raw
@pytest.mark.parametrize("verify,batch_chars", [(None, None), ("jaccard", None), (None, 2000)])
def test_the_staged_paths_verify_as_find_duplicates(tmp_path, monkeypatch, verify, batch_chars):
    """The one-task stage 2 and the bucket tasks decide what ``find_duplicates`` decides, under either
    rule, and also when a verify task checks its pairs in many small batches (``VERIFY_BATCH_CHARS``)."""
    import json

    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor

    from curation.dedup import NearDupClusters, NearDupSignatures, buckets, read_decisions
    from curation.dedup.buckets import bucket_stages

    if batch_chars:
        monkeypatch.setattr(buckets, "VERIFY_BATCH_CHARS", batch_chars)
    bounds_reads = []  # a verify task reads the texts' bounds from the meta files once, not per batch
    rows = buckets.SignatureFiles.rows
    monkeypatch.setattr(buckets.SignatureFiles, "rows",
                        lambda self, idx, names: bounds_reads.append(names) or rows(self, idx, names))

    docs = real_docs(n_toyhom=1500, n_disease=1500)
    copies, _ = plant(docs, per_kind=30, seed=5, min_chars=50)
    every = docs + copies
    kw = {} if verify is None else {"verify": verify}

    def read(data=None, rank: int = 0, world_size: int = 1):
        for i, t in every:
            yield Document(text=t, id=i, metadata={})

    sig = str(tmp_path / "sig")
    LocalPipelineExecutor([read, NearDupSignatures(sig)], tasks=1, logging_dir=str(tmp_path / "l1")).run()
    LocalPipelineExecutor([NearDupClusters(sig, str(tmp_path / "one"), **kw)], tasks=1,
                          logging_dir=str(tmp_path / "l2")).run()
    for key, _, pipeline, tasks in bucket_stages(sig, str(tmp_path / "b"), 2, **kw):
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=str(tmp_path / "lb" / key)).run()
    expected = sorted(find_duplicates(every, **kw))
    assert len([d for d in expected if d.kind == "near"]) >= 100
    assert sorted(read_decisions(str(tmp_path / "one"))) == expected
    assert sorted(read_decisions(str(tmp_path / "b"))) == expected
    batches = [json.loads(f.read_text())["verify_batches"] for f in sorted((tmp_path / "b").glob("*/pairs/*.stats.json"))]
    assert len(batches) == 2 and (min(batches) > 5 if batch_chars else max(batches) == 1), batches
    assert bounds_reads.count(["canon_end"]) == 2  # one per verify task (one signature rank), whatever its batches
