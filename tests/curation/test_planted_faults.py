"""The real pretraining and SFT recipes on a copy of ../shared/data/raw with faults planted the
way careless upstreams ship them: every fault is counted and set aside with a reason naming
file and line, nothing kills the build, and every document is accounted for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pytest

from curation.build import build
from cumed.store import Store

REPO = Path(__file__).resolve().parents[2]


def plant(raw: Path) -> None:
    # a bad byte and wrong column counts in the KG triples (also read by both lexicons)
    with (raw / "CMeKG_pycmekg/cmekg_triples.tsv").open("ab") as f:
        f.write(b"onlyonecolumn\n" b"a\tb\tc\td\te\n" b"\xe8\xa1\tbad\tbytes\n")
    # two exports concatenated: the header again, and a row of commas
    p = raw / "QASystemOnMedicalGraph_39health/data/disease.csv"
    b = p.read_bytes()
    p.write_bytes(b + b",,,,,,,,,,\n" + b.split(b"\n", 1)[0] + b"\n")
    # a JSON array cut inside a multi-byte character
    p = raw / "MedicalGPT_zh_SJTU/data/book_data.json"
    b = p.read_bytes()
    cut = int(len(b) * 0.6)
    while b[cut] < 0x80:  # land inside a character
        cut += 1
    p.write_bytes(b[: cut + 1])
    # JSONL lines that are not records, or cut
    with (raw / "MedicalGPT_shibing624/data/rag/medical_corpus.txt").open("a", encoding="utf-8") as f:
        f.write('[1, 2, 3]\n\n   \n{"问": "尿频怎么办"\n')
    # NUL bytes and GB18030-invalid bytes in the middle of the Toyhom CSV
    p = raw / "Toyhom_Chinese_medical_dialogue/样例_内科5000-6000.csv"
    b = p.read_bytes()
    mid = b.index(b"\n", len(b) // 2) + 1
    p.write_bytes(b[:mid] + b"\x00\x00garbage\xff\xfe,x,y,z\n" + b[mid:])
    # a paper of random bytes
    sorted((raw / "ChinaXiv_medical/urology").glob("*.md"))[0].write_bytes(bytes(range(128, 256)) * 40)
    # ShareGPT dialogues that are not dialogues
    with (raw / "MedicalGPT_shibing624/data/sft/medical_sft_1K_format.jsonl").open("a", encoding="utf-8") as f:
        for rec in ({"conversations": [{"from": "human", "value": "你好"}, {"from": "gpt", "value": ""}]},
                    {"conversations": "not a list"}, {"conversations": [{"from": "alien", "value": "x"}]}):
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


@pytest.fixture(scope="module")
def faulty_raw(raw_root, tmp_path_factory):
    raw = tmp_path_factory.mktemp("faulty") / "raw"
    shutil.copytree(raw_root, raw)
    plant(raw)
    return raw


def _reasons(dv, source: str) -> list[str]:
    removed = dv.to_arrow("removed", columns=["source", "removed_by", "reason"])
    part = removed.filter(pc.equal(removed.column("source"), source))
    return [f"{b}: {r}" for b, r in zip(part.column("removed_by").to_pylist(), part.column("reason").to_pylist())]


def test_pretraining_build_sets_every_planted_fault_aside(faulty_raw, tmp_path):
    dv, stats = build(REPO / "datasets" / "cumed-pretrain.yaml", faulty_raw, Store(tmp_path / "s"), workers=2,
                      work_root=tmp_path / "w", progress=False)
    for name, s in stats["sources"].items():
        assert s["read"] == s["kept"] + s["removed"], name
    assert stats["read"] == dv.rows + dv.removed_rows
    kg = _reasons(dv, "cmekg_triples")
    assert any("cmekg_triples.tsv line" in r and "b'\\xe8\\xa1' are not valid utf-8" in r for r in kg), kg
    assert sum("expected subject<TAB>predicate<TAB>object" in r for r in kg) == 2
    cards = _reasons(dv, "health39_disease_cards")
    assert any("disease.csv line" in r and "repeats the header" in r for r in cards)
    kept_cards = dv.to_arrow(columns=["source", "text"]).filter(
        pc.equal(pc.field("source"), "health39_disease_cards"))
    assert not any(t.startswith("name\n别名：alias") for t in kept_cards.column("text").to_pylist())
    book = stats["sources"]["sjtu_book_data"]
    assert book["read"] >= 15 and any("JSON array broken" in r for r in _reasons(dv, "sjtu_book_data"))
    assert any("not valid gb18030" in r for r in _reasons(dv, "toyhom_csv"))
    assert any("ChinaXiv" in r and "not valid utf-8" in r for r in _reasons(dv, "chinaxiv_medical"))


def test_sft_build_sets_every_planted_fault_aside(faulty_raw, tmp_path):
    dv, stats = build(REPO / "datasets" / "cumed-sft.yaml", faulty_raw, Store(tmp_path / "s"), workers=2,
                      progress=False)
    assert dv.rows > 0
    reasons = _reasons(dv, "medicalgpt_sft_1k")
    assert any("empty_turn" in r for r in reasons) and any("unknown_role" in r for r in reasons), reasons
    assert any("no_turns" in r for r in reasons), reasons  # "conversations" that is not a list
