"""Readers: real files under ../shared/data/raw (integration) and tiny broken files (units)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from curation.readers import READERS, make_reader

RAW = Path(os.environ.get("CUMED_RAW") or (Path(__file__).parents[2] / ".." / "shared" / "data" / "raw")).resolve()
needs_raw = pytest.mark.skipif(not RAW.is_dir(), reason=f"raw data not found at {RAW} (set CUMED_RAW)")

CMT_TEMPLATES = [
    {"when": "history", "template": "{history}\n患者：{instruction}\n医生：{output}", "each": {"history": "患者：{0}\n医生：{1}"}},
    {"when": "instruct", "template": "患者：{instruct}\n医生：{output}"},
]

# name, reader, path, category, options, documents expected (README figures unless noted)
REAL = {
    "toyhom_csv": ("csv", "Toyhom_Chinese_medical_dialogue/样例_内科5000-6000.csv", "qa",
                   {"encoding": "gb18030", "template": "{title}\n{ask}\n{answer}", "department_field": "department"}, 7644),
    "toyhom_blocks": ("text_blocks", "Toyhom_Chinese_medical_dialogue/Data_数据/IM_内科/内科.txt", "qa", {"encoding": "gb18030"}, 4048),
    "disease_cards": ("disease_cards", "QASystemOnMedicalGraph_39health/data/disease.csv", "encyclopedia", {}, 14336),
    "cmtmedqa": ("json", "Zhongjing_CMtMedQA/data/CMtMedQA_test.json", "dialogue",
                 {"templates": CMT_TEMPLATES, "id_field": "id", "department_field": "cate1"}, 1144),
    "huatuo_llama": ("json", "Huatuo_Llama_Med_Chinese/data/llama_data.json", "qa",
                     {"template": "{instruction}\n{output}", "synthetic": True}, 8658),
    "medicalgpt_rag": ("json", "MedicalGPT_shibing624/data/rag/medical_corpus.txt", "qa", {"template": "{问}\n{答}"}, 87),
    "sjtu_book": ("json", "MedicalGPT_zh_SJTU/data/book_data.json", "textbook", {}, 30),
    "cmb_clin": ("json", "DISC_MedLLM_eval/eval/samples/CMB-cases.json", "medical_case", {"id_field": "id", "template": "{case}"}, 73),
    "chinaxiv": ("markdown", "ChinaXiv_medical/*/*.md", "textbook", {"index": "chinaxiv_medical_index.jsonl"}, 765),
    "cmekg": ("kg_triples", "CMeKG_pycmekg/cmekg_triples.tsv", "knowledge_graph", {}, 27403),
    "cmekg_uro": ("kg_triples", "CMeKG_pycmekg/cmekg_urology_andrology_subjects.jsonl", "knowledge_graph", {}, 265),
}


def source(name, reader, path, category="qa", **options):
    return {"name": name, "reader": reader, "path": path, "category": category, "options": options}


def read_real(name):
    reader, path, category, options, _ = REAL[name]
    return list(make_reader(source(name, reader, path, category, **options), str(RAW)).run())


_cache: dict[str, list] = {}


def real(name):
    if name not in _cache:
        _cache[name] = read_real(name)
    return _cache[name]


# -- real data ---------------------------------------------------------------------------------
@needs_raw
@pytest.mark.parametrize("name", list(REAL))
def test_real_counts_and_unique_ids(name):
    docs = real(name)
    assert len(docs) == REAL[name][4]
    assert len({d.id for d in docs}) == len(docs)
    assert all(d.metadata["source"] == name and d.id.startswith(name + "-") for d in docs)
    good = [d for d in docs if not d.metadata.get("read_error")]
    assert all(d.text.strip() for d in good)
    assert all("\ufffd" not in d.text for d in good)


@needs_raw
def test_ids_stable_across_runs():
    for name in ("toyhom_csv", "cmtmedqa", "chinaxiv"):
        assert [d.id for d in read_real(name)] == [d.id for d in real(name)]


@needs_raw
def test_toyhom_gb18030_decoded():
    docs = real("toyhom_csv")
    depts = Counter(d.metadata["department"] for d in docs)
    assert depts["肾内科"] == 80  # README: 80 from 肾内科
    assert docs[0].text.startswith("高血压患者能吃党参吗？\n我有高血压")
    assert not any(d.metadata.get("read_error") for d in docs)
    blocks = real("toyhom_blocks")
    assert blocks[0].metadata["title"] == "高血压患者能吃党参吗？" and blocks[0].metadata["department"] == ""


@needs_raw
def test_disease_cards():
    docs = real("disease_cards")
    errors = [d for d in docs if d.metadata.get("read_error")]
    # 11 rows of the real file have shuffled columns spilling into the unnamed trailing columns
    assert len(errors) == 11
    assert "disease.csv line 7888" in errors[0].metadata["read_error"] and "shifted" in errors[0].metadata["read_error"]
    first = docs[0]
    assert first.metadata["title"] == "阳痿" and first.metadata["department"] == "男科 生殖健康"
    assert "别名：勃起功能障碍、" in first.text and "[详细]" not in first.text
    assert sum("泌尿" in d.metadata["department"] or "男科" in d.metadata["department"] for d in docs) >= 470


@needs_raw
def test_cmtmedqa_two_shapes():
    docs = real("cmtmedqa")
    assert Counter(d.metadata["shape"] for d in docs) == {"history": 1000, "instruct": 144}
    dialog = docs[0]
    assert dialog.metadata["native_id"] == "j4219" and dialog.metadata["department"] == "肿瘤科"
    assert dialog.text.startswith("患者：医生，我得了恶性乳腺癌中期") and "\n医生：" in dialog.text
    assert dialog.text.endswith("祝您早日康复！")
    safety = next(d for d in docs if d.metadata["shape"] == "instruct")
    assert safety.text.startswith("患者：医生，我家孩子发烧有41度") and safety.metadata["department"] == ""
    assert all(d.metadata.get("synthetic") for d in real("huatuo_llama"))


@needs_raw
def test_chinaxiv_markdown():
    docs = real("chinaxiv")
    assert all(d.metadata["category"] == "textbook" for d in docs)
    assert sum(d.metadata["references_cut"] for d in docs) >= 750
    paper = next(d for d in docs if d.metadata["file"].endswith("urology/ChinaXiv-201605.01477V1.md"))
    assert paper.metadata["title"].startswith("整合素") and paper.metadata["urology_term_hits"] == 49
    assert "占所有新增癌症病例的4.5%" in paper.text  # LaTeX "$4 . 5 \%$" became text
    assert "参考文献" not in paper.text and "![" not in paper.text and "\\mathrm" not in paper.text
    assert not any("<td>" in d.text or "](images/" in d.text for d in docs)
    assert any("\t" in d.text for d in docs)  # tables kept as tab-separated rows


@needs_raw
def test_cmekg_subjects():
    docs = real("cmekg")
    # 967,409 triples in the file; n_triples counts distinct ones: one triple (object '"') is there 3 times
    assert sum(d.metadata["n_triples"] for d in docs) == 967407
    uro = [d for d in docs if "泌尿外科" in d.metadata["department"].split("、")]
    assert len(uro) == 137  # README: 就诊科室 links 137 subjects to 泌尿外科
    d = uro[0]
    assert d.text.startswith(d.metadata["title"] + "\n") and "就诊科室：" in d.text
    sub = real("cmekg_uro")
    assert all({"泌尿外科", "男科", "泌尿内科", "肾内科"} & set(d.metadata["department"].split("、")) for d in sub)


# -- broken inputs -----------------------------------------------------------------------------
def write(tmp_path, name, data: bytes | str, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return name


def read(tmp_path, reader, path, **options):
    return list(make_reader(source("t", reader, path, **options), str(tmp_path)).run())


def errors(docs):
    return [d.metadata["read_error"] for d in docs if d.metadata.get("read_error")]


def test_csv_wrong_encoding_is_a_row_error(tmp_path):
    data = "department,title,ask,answer\n肾内科,标题,问题,回答\nICU,a,b,c\n".encode("gb18030")
    name = write(tmp_path, "x.csv", data)
    docs = read(tmp_path, "csv", name, encoding="utf-8", template="{title}\n{answer}", department_field="department")
    assert len(docs) == 2
    [msg] = errors(docs)
    assert msg.startswith("x.csv line 2, field 'department'") and "not valid utf-8" in msg and "encoding: gb18030" in msg
    assert docs[1].text == "a\nc" and docs[1].metadata["department"] == "ICU"  # the next row is read


def test_csv_bom_missing_and_extra_columns(tmp_path):
    name = write(tmp_path, "y.csv", "\ufeffid,q,a\n1,问,答\n2,只有问题\n3,问,答,多余\n", encoding="utf-8")
    docs = read(tmp_path, "csv", name, encoding="utf-8-sig", template="{q}\n{a}", id_field="id")
    assert len(docs) == 3 and docs[0].text == "问\n答" and docs[0].metadata["native_id"] == "1"
    missing, extra = errors(docs)
    assert missing.startswith("y.csv line 3: 2 fields, header has 3; missing field 'a'")
    assert extra.startswith("y.csv line 4: 1 value(s) beyond the 3 named columns")


def test_csv_whole_file_problems_raise(tmp_path):
    name = write(tmp_path, "z.csv", "部门,标题\n肾内科,x\n", encoding="gb18030")
    with pytest.raises(ValueError, match=r"cannot decode the header of z.csv \(line 1\) as utf-8.*encoding: gb18030"):
        read(tmp_path, "csv", name)
    with pytest.raises(ValueError, match=r"z.csv has no column 'answer'"):
        read(tmp_path, "csv", name, encoding="gb18030", template="{标题}{answer}")


def test_truncated_json_array_salvages_records(tmp_path):
    records = [{"id": f"r{i}", "q": f"问题{i}"} for i in range(3)]
    text = json.dumps(records, ensure_ascii=False, indent=2)
    name = write(tmp_path, "cut.json", text[: text.index('"r2"') + 6])
    docs = read(tmp_path, "json", name, template="{q}", id_field="id")
    assert [d.text for d in docs[:2]] == ["问题0", "问题1"]
    [msg] = errors(docs)
    assert msg.startswith("cut.json: JSON array broken at line 12 (character 102): record 2 (from line 10) does not parse")
    assert "2 complete records before it were read" in msg


def test_truncated_jsonl_keeps_other_lines(tmp_path):
    name = write(tmp_path, "cut.jsonl", '{"问": "a", "答": "b"}\n{"问": "c", "答\n{"问": "e", "答": "f"}\n')
    docs = read(tmp_path, "json", name, template="{问}\n{答}")
    assert [d.text for d in docs] == ["a\nb", "", "e\nf"]
    [msg] = errors(docs)
    assert msg.startswith("cut.jsonl line 2, column ") and "invalid JSON" in msg


def test_json_record_without_template_field_or_shape(tmp_path):
    name = write(tmp_path, "m.json", json.dumps([{"history": [["q", "a"]], "instruction": "i", "output": "o"}, {"other": 1}, {"instruct": "x"}]))
    docs = read(tmp_path, "json", name, templates=CMT_TEMPLATES)
    assert docs[0].text == "患者：q\n医生：a\n患者：i\n医生：o"
    no_shape, no_field = errors(docs)
    assert no_shape.startswith("m.json line 1 (record 1): no template matches the record")
    assert no_field.startswith("m.json line 1 (record 2): field 'output' missing (record has: instruct)")


@pytest.mark.parametrize("reader,opts", [("csv", {}), ("json", {}), ("text_blocks", {}), ("markdown", {}), ("kg_triples", {})])
def test_empty_file_is_one_error(tmp_path, reader, opts):
    name = write(tmp_path, "empty.txt", b"  \n")
    docs = read(tmp_path, reader, name, **opts)
    assert len(docs) == 1 and docs[0].text == ""
    assert errors(docs)[0].startswith("empty.txt: empty file")


def test_text_blocks_short_block_and_bad_bytes(tmp_path):
    data = "题一,问一\n答一\n\n只有一行\n\n题三,问三\n答三\n续答\n\n".encode("gb18030") + "题四,问四\n".encode("gb18030") + b"\xff\xfe\n"
    name = write(tmp_path, "b.txt", data)
    docs = read(tmp_path, "text_blocks", name, encoding="gb18030")
    assert len(docs) == 4
    assert docs[0].text == "题一\n问一\n答一" and docs[2].text == "题三\n问三\n答三\n续答"
    short, bad = errors(docs)
    assert short.startswith("b.txt line 4: block has 1 line(s), expected 2")
    assert bad.startswith("b.txt line 11: bytes b'\\xff") and "not valid gb18030" in bad


def test_kg_ungrouped_file_is_sorted_externally(tmp_path):
    rows = ["subject\tpredicate\tobject", "A\t就诊科室\t泌尿外科", "B\t症状\t咳嗽", "A\t症状\t尿频", "A\t症状\t尿急",
            "bad line", "B\t症状\t咳嗽", "C\t别称\tc"]
    name = write(tmp_path, "kg.tsv", "\n".join(rows) + "\n")
    docs = read(tmp_path, "kg_triples", name, sort_chunk_lines=2)
    good = {d.metadata["title"]: d for d in docs if not d.metadata.get("read_error")}
    assert set(good) == {"A", "B", "C"} and len(docs) == 4
    assert good["A"].text == "A\n就诊科室：泌尿外科\n症状：尿频、尿急" and good["A"].metadata["department"] == "泌尿外科"
    assert good["B"].text == "B\n症状：咳嗽"
    assert errors(docs) == ["kg.tsv line 6: expected subject<TAB>predicate<TAB>object, found 1 field(s); fix: repair or drop the line"]


def test_markdown_cleanup(tmp_path):
    md = (
        "# 标题\n\n正文占比 $4 . 5 \\%$ ，剂量 $1 0 \\mathrm { ~ m g }$ 。\n\n![](images/a.jpg)\n图1 说明\n\n"
        "<html><body><table><tr><td>组别</td><td>例数</td></tr><tr><td>治疗组</td><td>40</td></tr></table></body></html>\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n" + "更多正文。" * 40 + "\n\n# 参考文献\n[1] Foo B. Bar[J]. 2020.\n"
    )
    name = write(tmp_path, "p.md", md)
    [doc] = read(tmp_path, "markdown", name, category="textbook")
    assert doc.text.startswith("标题\n\n正文占比4.5%，剂量10 mg。\n\n图1 说明\n\n组别\t例数\n治疗组\t40")
    assert "a\tb\n1\t2" in doc.text and "参考文献" not in doc.text and "Foo" not in doc.text
    assert doc.metadata["title"] == "标题" and doc.metadata["references_cut"] is True


# -- make_reader --------------------------------------------------------------------------------
def test_make_reader_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown reader 'xml' in source s1; use csv, disease_cards, json, text_blocks, markdown, kg_triples, jsonl, parquet or hf"):
        make_reader(source("s1", "xml", "a.xml"), str(tmp_path))
    with pytest.raises(ValueError, match=r"unknown option 'encodng' for reader csv in source s2; use encoding, template"):
        make_reader(source("s2", "csv", "a.csv", encodng="gb18030"), str(tmp_path))
    with pytest.raises(ValueError, match=r"unknown encoding 'gbk2' in source toyhom; use gb18030, utf-8 or utf-8-sig"):
        make_reader(source("toyhom", "csv", "a.csv", encoding="gbk2"), str(tmp_path))
    with pytest.raises(ValueError, match=r"unknown category 'faq' in source s3; use encyclopedia, qa"):
        make_reader(source("s3", "csv", "a.csv", category="faq"), str(tmp_path))
    with pytest.raises(ValueError, match=r"unknown key 'optoins' in source s4"):
        make_reader({"name": "s4", "reader": "csv", "path": "a", "category": "qa", "optoins": {}}, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"source s5: no file matches"):
        list(make_reader(source("s5", "csv", "missing/*.csv"), str(tmp_path)).run())
    assert set(READERS) == {"csv", "disease_cards", "json", "text_blocks", "markdown", "kg_triples", "jsonl", "parquet", "hf"}


def test_recipe_sources_build(tmp_path):
    import yaml

    recipe = yaml.safe_load((Path(__file__).parents[2] / "datasets" / "cumed-pretrain.yaml").read_text(encoding="utf-8"))
    assert set(recipe["steps"]) <= {"normalize", "pii", "filters", "relevance", "decontaminate", "dedup"}
    for src in recipe["sources"]:
        make_reader(src, str(tmp_path))  # options valid for their reader
    synthetic = [s for s in recipe["sources"] if (s.get("options") or {}).get("synthetic")]
    assert [s["name"] for s in synthetic] == ["huatuo_llama_synthetic"] and synthetic[0]["enabled"] is False


def test_csv_row_repeating_the_header_is_a_row_error(tmp_path):
    # two exports concatenated: the second header is not a record
    name = write(tmp_path, "cat.csv", "title,ask,answer\n标题一,问一,答一\ntitle,ask,answer\n标题二,问二,答二\n", encoding="utf-8")
    docs = read(tmp_path, "csv", name, encoding="utf-8", template="{title}\n{ask}\n{answer}")
    assert [d.text for d in docs if not d.metadata.get("read_error")] == ["标题一\n问一\n答一", "标题二\n问二\n答二"]
    [msg] = errors(docs)
    assert msg.startswith("cat.csv line 3: the row repeats the header") and "fix: delete the line" in msg


def test_json_array_cut_inside_a_character_keeps_its_complete_records(tmp_path):
    records = [f"第{i}段：前列腺增生的药物治疗。" for i in range(6)]
    raw = json.dumps(records, ensure_ascii=False).encode("utf-8")
    cut = raw[: raw.index("第4段".encode()) + 1]  # ends inside the 3-byte 第
    assert cut[-1:] == "第".encode()[:1]
    name = write(tmp_path, "cut.json", cut)
    docs = read(tmp_path, "json", name, format="json")
    assert [d.text for d in docs[:4]] == records[:4]
    [msg] = errors(docs)
    assert msg.startswith("cut.json: JSON array broken") and "4 complete records before it were read" in msg


def test_json_array_bad_bytes_cost_only_their_record(tmp_path):
    raw = '[{"q": "尿频"}, {"q": "BAD"}, {"q": "血尿"}]'.encode("utf-8").replace(b"BAD", "腰痛".encode("gb18030"))
    name = write(tmp_path, "mixed.json", raw)
    docs = read(tmp_path, "json", name, format="json", template="{q}")
    assert [d.text for d in docs] == ["尿频", "", "血尿"]
    [msg] = errors(docs)
    assert msg.startswith("mixed.json line 1 (record 1): bytes b'\\xd1\\xfc' are not valid utf-8")
    assert "encoding: gb18030" in msg


def test_single_json_value_with_bad_bytes_is_one_error(tmp_path):
    name = write(tmp_path, "one.json", '{"q": "BAD"}'.encode().replace(b"BAD", "腰痛".encode("gb18030")))
    [doc] = read(tmp_path, "json", name, format="json", template="{q}")
    assert doc.metadata["read_error"].startswith("one.json: bytes b'\\xd1' at byte 7 are not valid utf-8")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_kg_grouped_check_by_blocks_matches_line_by_line(tmp_path, encoding, monkeypatch):
    """is_grouped reads blocks with one regex call each; it must judge as the subjects of the
    valid lines (``_triples``) do, whatever the block size, BOMs, header, blanks or bad bytes."""
    import random

    from curation.readers import base, kg_triples

    subjects = ["a", "b", " a", "a ", "\ufeffa", "", " ", "中"]
    shapes = ["{s}\tp\to", "{s}\tp", "{s}\tp\to\tx", "{s}\tp\to\r", "", "  ", "\t\t", "subject\tpredicate\tobject",
              "SUBJECT \t predicate\tObject\r"]
    r = random.Random(encoding)
    reader = make_reader(source("kg", "kg_triples", "t.tsv", "knowledge_graph", encoding=encoding), str(tmp_path))
    for block in (3, 1 << 20):
        monkeypatch.setattr(kg_triples, "line_blocks", lambda f, size=block: base.line_blocks(f, size))
        seen = set()
        for _ in range(400):
            lines = [r.choice(shapes).replace("{s}", r.choice(subjects)) for _ in range(r.randint(0, 8))]
            data = ("\ufeff" * (r.random() < 0.2) + "\n".join(lines) + "\n" * (r.random() < 0.5)).encode(
                "utf-8" if encoding == "utf-8-sig" else encoding)
            if r.random() < 0.1:
                data = data.replace(b"a", b"\xff", 1)
            (tmp_path / "t.tsv").write_bytes(data)
            by_line = reader._subjects_grouped(s for s, _, _, _ in reader._triples("t.tsv", []))
            assert reader.is_grouped("t.tsv") == by_line, data
            seen.add(by_line)
        assert seen == {True, False}


def test_markdown_fast_patterns_find_what_their_definitions_find():
    import random
    import re

    from curation.readers import markdown

    table = re.compile(r"(?:<html>\s*<body>\s*)?<table[^>]*>(.*?)</table>(?:\s*</body>\s*</html>)?", re.S | re.I)
    inline = re.compile(r"( ?)\$([^$\n]+?)\$( ?)")
    r = random.Random(5)
    pieces = ["$", " ", "$x$", " $a$ ", "a", "中", "\n", "<table>", "</table>", "<html>", "<body>", "</body>",
              "</html>", "<TABLE x>", "<tr><td>1</td></tr>", "\\frac{1}{2}", "\\label{x}", "(a)/(b)"]
    for _ in range(5000):
        text = "".join(r.choice(pieces) for _ in range(r.randint(0, 15)))
        assert [m.span() for m in table.finditer(text)] == [m.span() for m in markdown._TABLE.finditer(text)]
        assert [(m.span(), m.group(1), m.group(3)) for m in inline.finditer(text)] == \
               [(m.span(), m.group(1)[:-1], m.group(3)) for m in markdown._INLINE_MATH.finditer(text)]
