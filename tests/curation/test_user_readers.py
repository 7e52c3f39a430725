"""The readers of the users' own data (``jsonl``, ``parquet``, ``hf``) and explicit steps.

The issue's recipe (JSONL.gz + Parquet sources, ``steps: {dedup}`` only) builds on a folder that
holds nothing else: no seed layout, no lexicon, no evaluation set. Every bad record is a counted
``reader`` removal naming the file, the line or row and the field; read = kept + removed.
"""

from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from cumed.errors import CumedError
from cumed.store import Store
from curation.build import build
from curation.build.steps import resolved_steps
from curation.readers import make_reader
from curation.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]

LONG = "患者咨询：最近三天持续发热，体温三十八度五，伴有咳嗽和咽痛，请问需要做什么检查？医生回答：建议查血常规和胸片。"
OTHER = "糖尿病患者平时饮食要注意控制总热量，少吃精制糖和油炸食品，多吃蔬菜，规律监测血糖，按医嘱用药并定期复查糖化血红蛋白。"
SHORT = "谢谢"  # a filter (min_length) would remove it: kept when the recipe lists only dedup

ISSUE_RECIPE = """\
name: mydata
kind: documents
sources:
  - {name: dumps_jsonl, reader: jsonl, path: 'jsonl/*.jsonl.gz', category: qa, license: x, options: {text_field: text, id_field: id}}
  - {name: dumps_parquet, reader: parquet, path: 'parquet/*.parquet', category: qa, license: x, options: {text_field: text, id_field: id}}
steps:
  dedup: {threshold: 0.75}
"""

# (what is wrong, where it is, the field the reason must name)
JSONL_BAD = [("broken JSON", 3, None), ("missing text", 4, "text"), ("int text", 5, "text"), ("missing id", 6, "id")]
PARQUET_BAD = [("missing id", 2, "id"), ("missing text", 3, "text")]


def jsonl_lines(prefix: str) -> list[str]:
    return [
        json.dumps({"id": f"{prefix}1", "text": LONG, "lang": "zh"}, ensure_ascii=False),
        json.dumps({"id": f"{prefix}2", "text": SHORT}, ensure_ascii=False),
        '{"id": "broken", "text": "cut he',                                  # line 3: broken JSON
        json.dumps({"id": f"{prefix}4"}),                                      # line 4: no text field
        json.dumps({"id": f"{prefix}5", "text": 42}),                          # line 5: text is a number
        json.dumps({"text": OTHER + "（无编号）"}, ensure_ascii=False),        # line 6: no id
    ]


def write_user_folder(root: Path) -> Path:
    """jsonl/a.jsonl.gz, jsonl/b.jsonl.zst (.bz2 without zstandard), parquet/{p,q}.parquet, hf/ (a
    saved ``datasets`` folder when ``datasets`` is installed): nothing else."""
    (root / "jsonl").mkdir(parents=True)
    (root / "parquet").mkdir()
    with gzip.open(root / "jsonl" / "a.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(jsonl_lines("a")) + "\n")
    second = ("\n".join(jsonl_lines("b")) + "\n").encode()
    try:
        import zstandard

        (root / "jsonl" / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(second))
    except ImportError:
        (root / "jsonl" / "b.jsonl.bz2").write_bytes(bz2.compress(second))
    pq.write_table(pa.table({"id": ["p0", "p1", None, "p3"], "text": [OTHER, SHORT, LONG + "甲", None],
                             "lang": ["zh"] * 4}), root / "parquet" / "p.parquet")
    pq.write_table(pa.table({"id": ["q0"], "text": [7]}), root / "parquet" / "q.parquet")  # row 0: int text
    try:
        import datasets
    except ImportError:
        return root
    datasets.Dataset.from_dict({"id": ["h0", "h1", "h2"], "text": [LONG + "乙", None, OTHER + "丙"]}).save_to_disk(
        str(root / "hf" / "mydataset"))
    return root


@pytest.fixture()
def user(tmp_path):
    raw = write_user_folder(tmp_path / "data")
    recipe = tmp_path / "mydata.yaml"
    recipe.write_text(ISSUE_RECIPE, encoding="utf-8")
    return raw, recipe


def read_all(source: dict, raw: Path) -> list:
    reader = make_reader(source, str(raw))
    files = reader.data_folder.list_files(glob_pattern=reader.glob_pattern)
    return [d for f in files for d in reader.read_file(f)]


def test_issue_recipe_builds_on_a_folder_of_jsonl_and_parquet(user, tmp_path, capfd):
    raw, recipe = user
    dv, stats = build(recipe, raw, Store(tmp_path / "s"), work_root=tmp_path / "w", progress=True)
    # the build says what it runs before it runs it, and records it: only dedup
    assert "mydata: steps: dedup(threshold=0.75)" in capfd.readouterr().err
    assert dv.manifest["lineage"]["steps"] == [{"step": "dedup", "options": {"threshold": 0.75}}]
    assert not dv.manifest["lineage"]["side_inputs"]  # no lexicon, no evaluation set was read
    kept, removed = dv.to_arrow().to_pylist(), dv.to_arrow("removed").to_pylist()
    for name, s in stats["sources"].items():
        assert s["read"] == s["kept"] + s["removed"] == sum(r["source"] == name for r in kept + removed), name
    assert stats["sources"]["dumps_jsonl"]["read"] == 6 and stats["sources"]["dumps_parquet"]["read"] == 5
    # no filter ran: the two-character text is kept, nothing but the reader and dedup removed anything
    assert SHORT in {r["text"] for r in kept}
    assert {r["removed_by"] for r in removed} <= {"reader", "dedup"}
    reasons = [r["reason"] for r in removed if r["removed_by"] == "reader"]
    for _, line, field in JSONL_BAD:
        assert any(r.startswith(f"read_error: jsonl/a.jsonl.gz line {line}") and (field is None or f"'{field}'" in r)
                   for r in reasons), (line, reasons)
    for _, row, field in PARQUET_BAD:
        assert any(f"parquet/p.parquet row {row} (field '{field}')" in r for r in reasons), (row, reasons)
    assert any("parquet/q.parquet row 0 (field 'text')" in r and "a number" in r for r in reasons), reasons
    assert len(reasons) == len(JSONL_BAD) + len(PARQUET_BAD) + 1


def test_ids_are_stable_across_builds_and_namespaced_by_source(user, tmp_path):
    raw, recipe = user
    a, _ = build(recipe, raw, Store(tmp_path / "s1"), work_root=tmp_path / "w1", progress=False)
    b, _ = build(recipe, raw, Store(tmp_path / "s2"), work_root=tmp_path / "w2", progress=False, workers=2)
    assert a.content_hash == b.content_hash
    ids = sorted(a.to_arrow().column("id").to_pylist() + a.to_arrow("removed").column("id").to_pylist())
    assert ids == sorted(b.to_arrow().column("id").to_pylist() + b.to_arrow("removed").column("id").to_pylist())
    assert len(set(ids)) == len(ids)
    src = {"name": "dumps_jsonl", "reader": "jsonl", "path": "jsonl/*.jsonl.gz", "category": "qa",
           "options": {"text_field": "text", "id_field": "id"}}
    docs = read_all(src, raw)
    first = next(d for d in docs if d.metadata.get("native_id") == "a1")
    assert first.id.startswith("dumps_jsonl-") and first.metadata["line"] == 1
    # without id_field the id is a hash of source, file and line: the record without an id is kept
    no_id = read_all({**src, "options": {"text_field": "text"}}, raw)
    assert not any(d.metadata.get("read_error") for d in no_id if d.metadata["line"] == 6)
    assert [d.id for d in no_id] == [d.id for d in read_all({**src, "options": {"text_field": "text"}}, raw)]


def test_jsonl_compression_by_extension_and_metadata_fields(user):
    raw, _ = user
    name = "b.jsonl.zst" if (raw / "jsonl" / "b.jsonl.zst").exists() else "b.jsonl.bz2"
    docs = read_all({"name": "b", "reader": "jsonl", "path": f"jsonl/{name}", "category": "qa",
                     "options": {"id_field": "id", "metadata_fields": ["lang"]}}, raw)
    assert len(docs) == 6 and docs[0].text == LONG and docs[0].metadata["lang"] == "zh"
    assert sum(bool(d.metadata.get("read_error")) for d in docs) == 4
    # a template instead of text_field; a field it names that a record lacks is that record's error
    docs = read_all({"name": "t", "reader": "parquet", "path": "parquet/p.parquet", "category": "qa",
                     "options": {"template": "[{lang}] {text}"}}, raw)
    assert docs[0].text == f"[zh] {OTHER}"
    docs = read_all({"name": "t", "reader": "parquet", "path": "parquet/p.parquet", "category": "qa",
                     "options": {"template": "{title}\n{text}"}}, raw)
    assert all("row" in d.metadata["read_error"] and "field 'title' missing" in d.metadata["read_error"] for d in docs)


def test_cut_gzip_is_a_counted_read_error(tmp_path):
    (tmp_path / "d").mkdir()
    data = gzip.compress(("\n".join(json.dumps({"text": f"{LONG}{i}"}, ensure_ascii=False) for i in range(400))).encode())
    (tmp_path / "d" / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    docs = read_all({"name": "c", "reader": "jsonl", "path": "d/cut.jsonl.gz", "category": "qa"}, tmp_path)
    errors = [d.metadata["read_error"] for d in docs if d.metadata.get("read_error")]
    assert errors and "d/cut.jsonl.gz" in errors[-1] and "restore the complete file" in errors[-1]


def test_hf_reader_on_a_saved_dataset_folder(user, tmp_path):
    pytest.importorskip("datasets")
    raw, _ = user
    docs = read_all({"name": "h", "reader": "hf", "path": "hf/mydataset/*", "category": "qa",
                     "options": {"id_field": "id"}}, raw)
    assert [d.text for d in docs if not d.metadata.get("read_error")] == [LONG + "乙", OTHER + "丙"]
    bad = [d.metadata["read_error"] for d in docs if d.metadata.get("read_error")]
    assert len(bad) == 1 and "row 1 (field 'text')" in bad[0] and "data-00000-of-00001.arrow" in bad[0]
    # the recipe path names the folder: its data files are the units, its description files read as nothing
    path = _write(tmp_path / "hf.yaml", {"name": "hfdata", "sources": [
        {"name": "h", "reader": "hf", "path": "hf/mydataset", "category": "qa"}], "steps": {}})
    assert {f.name for f in load_recipe(path, raw).sources[0].files} >= {"data-00000-of-00001.arrow", "state.json"}
    dv, stats = build(path, raw, Store(tmp_path / "s"), work_root=tmp_path / "w", progress=False)
    assert (stats["read"], dv.rows, dv.removed_rows) == (3, 2, 1)
    assert dv.manifest["lineage"]["steps"] == []


def test_hub_layout_parquet_shards_through_hf(user):
    raw, _ = user
    docs = read_all({"name": "h", "reader": "hf", "path": "parquet/*.parquet", "category": "qa",
                     "options": {"id_field": "id"}}, raw)
    assert len(docs) == 5 and sum(bool(d.metadata.get("read_error")) for d in docs) == 3


def _write(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    return path


def test_lexicon_filter_without_its_files_names_the_key(user, tmp_path):
    raw, _ = user
    recipe = _write(tmp_path / "lex.yaml", {"name": "lex", "sources": [
        {"name": "p", "reader": "parquet", "path": "parquet/p.parquet", "category": "qa"}],
        "steps": {"filters": {"lexicon_density": {}}}})
    with pytest.raises(CumedError) as e:
        build(recipe, raw, Store(tmp_path / "s"), work_root=tmp_path / "w", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and str(recipe) in msg and "steps.filters.lexicon_density.lexicon" in msg
    assert "--raw" in msg and "raw_dir" not in msg


def test_decontaminate_without_its_files_names_the_key(user, tmp_path):
    raw, _ = user
    recipe = _write(tmp_path / "dec.yaml", {"name": "dec", "sources": [
        {"name": "p", "reader": "parquet", "path": "parquet/p.parquet", "category": "qa"}],
        "steps": {"decontaminate": {"eval_sets": ["cmb_clin"]}}})
    with pytest.raises(CumedError, match=r"steps\.decontaminate\.paths\.cmb_clin.*--raw"):
        build(recipe, raw, Store(tmp_path / "s"), work_root=tmp_path / "w", progress=False)


def test_empty_filters_mapping_is_an_error_and_all_runs_the_nine(user, tmp_path):
    raw, _ = user
    src = [{"name": "p", "reader": "parquet", "path": "parquet/p.parquet", "category": "qa"}]
    with pytest.raises(CumedError, match="filters: all"):
        resolved_steps(load_recipe(_write(tmp_path / "e.yaml", {"name": "e", "sources": src,
                                                                "steps": {"filters": {}}}), raw))
    steps = resolved_steps(load_recipe(_write(tmp_path / "a.yaml", {"name": "a", "sources": src,
                                                                   "steps": {"filters": "all", "pii": {}}}), raw))
    assert [s["step"] for s in steps][:2] == ["pii", "filters.min_length"] and len(steps) == 10


def test_shipped_pretrain_recipe_runs_the_steps_it_ran_before(raw_root):
    steps = resolved_steps(load_recipe(REPO / "datasets" / "cumed-pretrain.yaml", raw_root))
    assert [s["step"] for s in steps] == [
        "normalize", "pii", "filters.min_length", "filters.mojibake", "filters.cjk_ratio", "filters.symbol_ratio",
        "filters.digit_ratio", "filters.boilerplate", "filters.line_repetition", "filters.char_repetition",
        "filters.lexicon_density", "relevance", "decontaminate", "dedup"]
    opts = {s["step"]: s["options"] for s in steps}
    assert opts["filters.lexicon_density"] == {
        "lexicon": ["CMeKG_pycmekg/cmekg_triples.tsv", "QASystemOnMedicalGraph_39health/data/*_vocab.txt"]}
    assert opts["decontaminate"] == {"eval_sets": ["huatuo26m_test", "cmb_clin", "disc_eval"]}
    assert opts["dedup"] == {"threshold": 0.75, "verify": "coverage"} and opts["normalize"] == opts["pii"] == {}
