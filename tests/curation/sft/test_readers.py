"""Every conversation reader on its real file: counts, turn order, roles, GB18030."""

import json
from collections import Counter

import pytest

from curation.sft.readers import read_conversations

EXPECTED = {
    "toyhom_csv": 7644,
    "toyhom_im_blocks": 4048,
    "cmtmedqa": 1144,  # 1,000 dialogues + 144 safety items
    "bianque": 128,
    "huatuo_liver_cancer": 1000,
    "medicalgpt_sft_1k": 1000,
    "huatuo_llama_synthetic": 8658,
}


def _read(spec, raw_root):
    return list(read_conversations(spec, str(raw_root)))


def _roles(doc):
    return [m["role"] for m in doc.metadata["messages"]]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_counts_and_valid_dialogues(name, source_spec, raw_root):
    from curation.sft.roles import validate

    docs = _read(source_spec(name), raw_root)
    assert len(docs) == EXPECTED[name]
    assert len({d.id for d in docs}) == len(docs)
    bad = [(d.id, validate(d.metadata["messages"])) for d in docs if validate(d.metadata["messages"])]
    assert not bad, bad[:3]
    assert not [d for d in docs if d.metadata.get("read_error") or d.metadata.get("role_error")]


def test_ids_are_stable(source_spec, raw_root):
    a = [d.id for d in _read(source_spec("bianque"), raw_root)]
    b = [d.id for d in _read(source_spec("bianque"), raw_root)]
    assert a == b and a[0].startswith("bianque-")


def test_toyhom_gb18030_decoded(source_spec, raw_root):
    docs = _read(source_spec("toyhom_csv"), raw_root)
    first = docs[0]
    assert first.metadata["messages"][0] == {"role": "user", "content": "我有高血压这两天女婿来的时候给我拿了些党参泡水喝，您好高血压可以吃党参吗？"}
    assert first.metadata["messages"][1]["content"].startswith("高血压病人可以口服党参的")
    assert first.metadata["department"] == "心血管科" and first.metadata["title"] == "高血压患者能吃党参吗？"
    assert not any("\ufffd" in d.text for d in docs)
    blocks = _read(source_spec("toyhom_im_blocks"), raw_root)
    assert blocks[0].metadata["messages"][0]["content"] == first.metadata["messages"][0]["content"]
    assert Counter(len(d.metadata["messages"]) for d in blocks) == {2: 4048}


def test_cmtmedqa_history_in_order_and_safety_items(source_spec, raw_root):
    docs = _read(source_spec("cmtmedqa"), raw_root)
    raw = json.loads((raw_root / "Zhongjing_CMtMedQA/data/CMtMedQA_test.json").read_text(encoding="utf-8"))
    shapes = Counter(d.metadata["shape"] for d in docs)
    assert shapes == {"history": 1000, "instruct": 144}
    for doc, rec in zip(docs, raw):
        msgs = doc.metadata["messages"]
        if "history" in rec:
            expected = [t.strip() for q, a in rec["history"] for t in (q, a)] + [rec["instruction"].strip(), rec["output"].strip()]
            assert [m["content"] for m in msgs] == expected
            assert _roles(doc) == ["user", "assistant"] * (len(rec["history"]) + 1)
            assert doc.metadata["cate1"] == rec["cate1"] and doc.metadata["native_id"] == rec["id"]
        else:
            assert [m["content"] for m in msgs] == [rec["instruct"].strip(), rec["output"].strip()]


def test_bianque_inline_markers(source_spec, raw_root):
    docs = _read(source_spec("bianque"), raw_root)
    assert all(_roles(d) == ["user", "assistant"] for d in docs)
    first = docs[0].metadata["messages"]
    assert first[0]["content"].startswith("我和我男朋友再一起已经7年多了") and "医生：" not in first[0]["content"]
    assert first[1]["content"].startswith("三个方面治疗性冷淡")
    assert not any("\\n" in m["content"] for d in docs for m in d.metadata["messages"])


def test_liver_cancer_inline_turns(source_spec, raw_root):
    docs = _read(source_spec("huatuo_liver_cancer"), raw_root)
    raw = json.loads((raw_root / "Huatuo_Llama_Med_Chinese/data-literature/liver_cancer.json").read_text(encoding="utf-8"))
    for doc, rec in zip(docs, raw):
        n_user = rec["instruction"].count("<user>")
        assert _roles(doc) == ["user", "assistant"] * n_user
        assert doc.metadata["messages"][-1]["content"] == rec["output"].strip()
    msgs = docs[0].metadata["messages"]
    assert msgs[0]["content"] == "我听说免疫疗法是治疗晚期肝癌的一种很有效的方法，真的吗？"
    assert msgs[1]["content"].startswith("是的，免疫疗法")
    assert msgs[2]["content"] == "但是，这是否适用于所有的肝癌患者？"


def test_sharegpt_roles(source_spec, raw_root):
    docs = _read(source_spec("medicalgpt_sft_1k"), raw_root)
    assert all(_roles(d) == ["user", "assistant"] for d in docs)
    assert docs[0].metadata["messages"][0]["content"].startswith("治疗阳痿吃什么药呢")


def test_synthetic_marked(source_spec, raw_root):
    spec = source_spec("huatuo_llama_synthetic")
    assert spec.get("enabled") is False  # excluded by default
    docs = _read(spec, raw_root)
    assert all(d.metadata.get("synthetic") is True for d in docs)
