"""Decontamination: evaluation items pasted into real training text are removed, naming the item."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from datatrove.data import Document

from cumed.eval_sets import EVAL_SETS, cmb_clin, disc_eval, huatuo26m_test, load_eval_set
from curation.steps.decontaminate import Decontaminate

RAW = Path(__file__).resolve().parents[3] / "shared" / "data" / "raw"
TOYHOM = RAW / "Toyhom_Chinese_medical_dialogue" / "样例_内科5000-6000.csv"
PAPER = RAW / "ChinaXiv_medical" / "urology" / "ChinaXiv-201801.00661V1.md"
pytestmark = pytest.mark.skipif(not TOYHOM.exists(), reason=f"real data not found at {RAW}")


@pytest.fixture(scope="module")
def step():
    s = Decontaminate(raw=RAW)
    s.build_index()
    return s


@pytest.fixture(scope="module")
def toyhom():
    t = pd.read_csv(TOYHOM, encoding="gb18030").fillna("")
    return [f"{r.title}\n{r.ask}\n{r.answer}" for r in t.itertuples()]


def test_eval_set_loaders_yield_ids_and_question_and_answer():
    hua = list(huatuo26m_test(RAW))
    assert len(hua) == 6000 and hua[0][0] == "0"
    assert "腰间盘" in hua[0][1] and "泡脚是可以的" in hua[0][1]  # question and answer
    cmb = list(cmb_clin(RAW))
    assert len(cmb) == 73 and "右下腹" in cmb[0][1]
    disc = list(disc_eval(RAW))
    assert len(disc) == 240 and {i.split("/")[0] for i, _ in disc} == {"cmd", "cmid"}
    with pytest.raises(KeyError, match="use one of huatuo26m_test"):
        load_eval_set("huatuo", RAW)
    assert set(EVAL_SETS) == {"huatuo26m_test", "cmb_clin", "disc_eval"}


def test_pasted_items_are_removed_naming_the_item(step, toyhom):
    hua = dict(huatuo26m_test(RAW))
    cmb = dict(cmb_clin(RAW))
    answer = hua["123"].split("\n", 1)[1]  # the answer only, not the question
    cases = [
        # a Toyhom answer with a Huatuo-26M test answer pasted in
        (toyhom[10] + "\n" + answer, "huatuo26m_test:123"),
        # a CMB-Clin case pasted into a real paper, in Traditional script and full-width digits
        (PAPER.read_text(encoding="utf-8")[:3000] + "\n病例：\n" + _to_trad(cmb["5"]), "cmb_clin:5"),
        # a CMID question quoted whole
        ("网友提问：" + dict(disc_eval(RAW))["cmid/1-6020"] + "\n医生回复：多喝水。", "disc_eval:cmid/1-6020"),
    ]
    for text, item in cases:
        doc = Document(text=text, id="x", metadata={})
        keep, reason = step.filter(doc)
        assert not keep and reason == f"eval_overlap: {item}" and doc.metadata["eval_item"] == item


def test_real_toyhom_documents_are_kept(step, toyhom):
    removed = [t for t in toyhom if step.filter(Document(text=t, id="x", metadata={})) is not True]
    assert len(removed) / len(toyhom) <= 0.01, len(removed)


def test_boilerplate_span_alone_does_not_remove():
    items = {"toy": [("a", "您好，根据您的描述，考虑是前列腺炎引起的，建议到医院泌尿外科检查前列腺液常规。")]}
    step = Decontaminate(items, n=8, min_spans=20, min_coverage=0.5)
    assert step.filter(Document(text="您好，根据您的描述，考虑是感冒，多喝水多休息。", id="d", metadata={})) is True
    keep, reason = step.filter(Document(text="转载：" + items["toy"][0][1], id="e", metadata={}))
    assert not keep and reason == "eval_overlap: toy:a"


def _to_trad(text: str) -> str:
    import opencc

    return opencc.OpenCC("s2t").convert(text).translate(str.maketrans("0123456789", "０１２３４５６７８９"))


def test_run_in_batches_matches_single_documents(step, toyhom):
    hua = dict(huatuo26m_test(RAW))
    texts = toyhom[:300] + [toyhom[300] + hua["42"]]
    docs = [Document(text=t, id=str(i), metadata={}) for i, t in enumerate(texts)]
    kept = list(step.run(iter(docs)))
    removed = [d for d in docs if "removed_by" in d.metadata]
    assert len(kept) + len(removed) == len(docs)
    assert "300" in {d.id for d in removed}
    assert next(d for d in removed if d.id == "300").metadata["eval_item"] == "huatuo26m_test:42"
    assert [step.contaminating_item(t) for t in texts] == step.contaminating_items(texts)


def test_run_on_column_batches_records_the_item(step, toyhom, tmp_path):
    """On the reader's ``DocumentBatch``es (a build whose every step judges texts) the removed row
    written by the exclusion writer carries the item, as in a stream of Documents."""
    import copy

    import pyarrow.parquet as pq

    from curation.batch import DocumentBatch
    from curation.build.steps import removed_writer

    hua = dict(huatuo26m_test(RAW))
    texts = toyhom[:300] + [toyhom[300] + hua["42"]] + toyhom[301:320]
    batches = [DocumentBatch([str(i) for i in range(k, min(k + 128, len(texts)))], texts[k:k + 128], {"source": ["t"] * 128})
               for k in range(0, len(texts), 128)]
    batches[-1].meta["source"] = batches[-1].meta["source"][: len(batches[-1])]
    rows = {}
    for kind, stream in (("batches", batches),
                         ("documents", [d for b in batches for d in b.documents()])):
        s = copy.copy(step)
        s.exclusion_writer = removed_writer(tmp_path / kind, 10, "decontaminate")
        kept = list(s.run(iter(stream)))
        assert (sum(map(len, kept)) if kind == "batches" else len(kept)) == len(texts) - 1
        rows[kind] = pq.read_table(next((tmp_path / kind).rglob("*.parquet"))).to_pylist()
    assert rows["batches"] == rows["documents"]
    assert [r["id"] for r in rows["batches"]] == ["300"]
    assert '"eval_item": "huatuo26m_test:42"' in rows["batches"][0]["metadata"]


@pytest.mark.parametrize("damage, problem", [
    (lambda b: b[: b.index(b"}", len(b) // 2)], "invalid JSON at line"),
    (lambda b: b[: b.index("右".encode()) + 1], "ends inside a character"),
    (lambda b: b[:100] + "腰痛".encode("gb18030") + b[100:], "are not valid utf-8"),
])
def test_a_damaged_eval_set_is_refused_naming_the_file(tmp_path, damage, problem):
    rel = "DISC_MedLLM_eval/eval/samples/CMB-cases.json"
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / rel).write_bytes(damage((RAW / rel).read_bytes()))
    with pytest.raises(ValueError, match=f"evaluation set file {tmp_path / rel}: .*{problem}.*fix: restore the file"):
        list(cmb_clin(tmp_path))


def test_compiled_span_lookup_finds_what_searching_every_span_finds(step, toyhom, monkeypatch):
    """``span_lookup.key_spans`` (rolled hashes, a hash table of the keys; compiled) finds exactly
    the spans that hashing every span with ``canonical.window_hashes`` and binary-searching each
    in the sorted keys finds, text by text, also with a crowded table (long probe runs); and the
    step's decisions follow."""
    import numpy as np

    from curation.dedup.canonical import canonical_batch, window_hashes
    from curation.steps import span_lookup
    from curation.steps.span_lookup import key_spans, key_table

    hua = dict(huatuo26m_test(RAW))
    texts = toyhom[:400] + [toyhom[400] + hua["42"], hua["7"], "", "短", hua["42"] * 3, "".join(list(hua.values())[:60])]
    cps, lens = canonical_batch(texts)
    keys = np.asarray(step._keys)
    want, start = [], 0
    for d, L in enumerate(lens.tolist()):
        h = window_hashes(cps[start:start + L], step.n)
        start += L
        pos = np.searchsorted(keys, h).clip(max=len(keys) - 1)
        want += [(d, int(p)) for p in pos[keys[pos] == h]]
    for bits in (None, (len(keys) - 1).bit_length()):  # half full; over 3/4 full
        got = key_spans(cps, lens, step.n, key_table(keys, bits))
        assert list(zip(got[0].tolist(), got[1].tolist())) == want
    monkeypatch.setattr(span_lookup, "BLOCK", 5000)  # texts in many groups, one of them longer than a group
    got = key_spans(cps, lens, step.n, key_table(keys))
    assert list(zip(got[0].tolist(), got[1].tolist())) == want
    assert len(want) > 1024
    fast = step.contaminating_items(texts)
    assert fast[400] == "huatuo26m_test:42" and fast[401] == "huatuo26m_test:7" and fast[404] == "huatuo26m_test:42"


def test_decisions_follow_the_rule_written_plainly(step, toyhom):
    """The step's item per document (compiled lookup, pairs counted as int64) against the rule
    written plainly: the distinct key spans of the document, counted per evaluation item, an item
    qualifying with >= min_spans spans or >= min_coverage of its own spans, the one with most
    spans winning (the first item on a tie). Real consultations with items pasted in, whole,
    halved and cut to a tenth, at either end."""
    import random
    from collections import Counter

    import numpy as np

    from curation.dedup.canonical import canonical_batch, window_hashes

    hua = list(dict(huatuo26m_test(RAW)).values())
    rng = random.Random(0)
    texts = []
    for t in toyhom[:600]:
        item = rng.choice(hua)
        item = item[: int(len(item) * rng.choice([1.0, 0.5, 0.1]))]
        texts.append(t + item if rng.random() < 0.5 else item + t)
    keys = np.asarray(step._keys)

    def plain(text):
        cps, lens = canonical_batch([text])
        h = window_hashes(cps, step.n)
        pos = np.searchsorted(keys, h).clip(max=len(keys) - 1)
        spans = set(pos[keys[pos] == h].tolist())
        per_item = Counter(int(step._owner[p]) for p in spans)
        best = None
        for item in sorted(per_item):
            c = per_item[item]
            if c >= step.min_spans or c >= step.min_coverage * step._item_spans[item]:
                if best is None or c > best[1]:
                    best = (item, c)
        return None if best is None else step._labels[best[0]]

    got = step.contaminating_items(texts)
    assert got == [plain(t) for t in texts]
    assert 100 < sum(g is not None for g in got) < 600
