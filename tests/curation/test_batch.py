"""Stage A in column batches (``curation.batch``): the same documents, rows and published version
as one document at a time.

The ``jsonl`` reader builds a chunk of well-formed lines column by column and falls back to one
line at a time for a chunk with any bad line; a dedup-only build passes those batches through
``DropReadErrors``, the signatures and the Parquet writer without a ``Document`` per record. Each
test compares against the per-document definition, so a shortcut that changes an id, a text, a
metadata value or a removal fails here.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from datatrove.data import Document

from cumed.ids import id_prefix, stable_id_after, stable_ids_after
from cumed.store import Store
from curation.batch import DocumentBatch
from curation.build import build
from curation.readers import make_reader
from curation.readers import templates
from curation.readers.base import CHUNK_RECORDS
from curation.rows import _batch_columns, _columns
from curation.steps.base import DropReadErrors

Q = "最近三天持续发热，体温三十八度五，伴有咳嗽和咽痛，请问需要做什么检查？"
A = "建议查血常规和胸片，多喝水，注意休息，如持续高热请及时就诊。"


def good(i: int, **extra) -> dict:
    return {"id": f"r{i % 997}" if i % 5 else i, "question": f"{Q}{i}", "answer": f" {A}{i % 13} ",
            "text": f"{Q}{A}{i}", "meta": {"dept": f"d{i % 3}"}, "lang": "zh", **extra}


def lines(n: int, bad_at: dict[int, str]) -> list[str]:
    """``n`` well-formed records (ids repeat: duplicate native ids; every fifth id an integer),
    with ``bad_at[i]`` replacing line i and a blank line and a CRLF line in between."""
    out = []
    for i in range(n):
        out.append(bad_at.get(i) or json.dumps(good(i), ensure_ascii=False))
        if i == 7:
            out.append("   ")
    out[3] += "\r"
    return out


BAD = [  # lines with something wrong, placed in the third chunk by ``jsonl_folder``
    '{"id": "cut", "question": "半',                                     # broken JSON
    json.dumps({"id": "x1", "answer": A}, ensure_ascii=False),           # no question
    json.dumps({"id": "x2", "question": 5, "answer": A}),                # question is a number
    json.dumps({"question": Q, "answer": A}, ensure_ascii=False),        # no id
    json.dumps({"id": True, "question": Q, "answer": A}, ensure_ascii=False),  # id a boolean
    json.dumps(["not", "an", "object"]),
    json.dumps({"id": "x3", "question": ["a", "list"], "answer": A}, ensure_ascii=False),  # rendered, not bad
]

OPTION_SETS = [
    {"template": "{question}\n{answer}", "id_field": "id"},
    {"template": "问：{question}{{注}}\n答：{answer}", "id_field": "id", "metadata_fields": ["lang", "meta.dept"]},
    {"text_field": "text", "metadata_fields": ["lang"]},
    {"text_field": "text", "id_field": "id"},
]


@pytest.fixture(scope="module")
def jsonl_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("batch_raw")
    (root / "qa").mkdir()
    n = 3 * CHUNK_RECORDS + 300  # two well-formed chunks, then one with bad lines, then a short one
    bad = {2 * CHUNK_RECORDS + 7 * k: line for k, line in enumerate(BAD)}
    with gzip.open(root / "qa" / "a.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines(n, bad)) + "\n")
    (root / "qa" / "b.jsonl").write_text("\n".join(lines(40, {})) + "\n", encoding="utf-8")
    return root


def reader_for(root: Path, options: dict, **extra):
    return make_reader({"name": "qa_dump", "reader": "jsonl", "path": "qa/*.jsonl*", "category": "qa",
                        "license": "test", "options": options, **extra}, str(root))


def as_tuples(docs: list[Document]) -> list[tuple]:
    # metadata as a dict: the same keys and values; their order may differ after a chunk with a
    # bad line (nothing reads it: the metadata column is JSON with sorted keys)
    return [(d.id, d.text, d.metadata) for d in docs]


@pytest.mark.parametrize("options", OPTION_SETS)
def test_jsonl_chunks_are_the_one_line_at_a_time_documents(jsonl_folder, options):
    fast, slow = reader_for(jsonl_folder, options), reader_for(jsonl_folder, options)
    every, built, one_by_one = [], [], []  # which path each chunk took
    column_path, line_path = fast.records_batch, fast._line_document
    fast.records_batch = lambda *a: built.append(column_path(*a)) or built[-1]
    fast._line_document = lambda li, *a: one_by_one.append(li) or line_path(li, *a)
    for f in sorted(fast.data_folder.list_files(glob_pattern=fast.glob_pattern)):
        chunks = list(fast.read_chunks(f))
        got = [d for c in chunks for d in c.documents()]
        slow._start_file(f)  # the definition: every line through the adapter, in order
        with slow.data_folder.open(f, "rb", compression="infer") as fh:
            raw = [(li, line) for li, line in enumerate(fh.read().split(b"\n")) if line.strip()]
        want = [slow._line_document(li, line, f) for li, line in raw]
        assert as_tuples(got) == as_tuples(want), f
        assert as_tuples(list(fast.read_file(f))) == as_tuples(want)  # the per-document mode
        every += got
    # the bad lines are read errors naming their line; the repeated native ids are flagged
    errors = [d.metadata for d in every if d.metadata.get("read_error")]
    # template: broken JSON, no question, no id, a boolean id, not an object (a number or a list
    # is rendered); text_field: every bad line, none of them has a "text"
    assert len(errors) == (5 if "template" in options else len(BAD))
    assert all(f"line {m['line']}" in m["read_error"] for m in errors)
    if options.get("id_field"):
        assert any(d.metadata.get("duplicate_native_id") for d in every)
    # both paths ran: the well-formed chunks column by column, the one with bad lines line by line
    assert sum(b is not None for b in built) >= 3
    assert len(set(one_by_one)) == CHUNK_RECORDS and min(one_by_one) >= 2 * CHUNK_RECORDS  # the third chunk only


def test_parquet_chunks_are_the_one_row_at_a_time_documents(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": str(r["id"]), "text": r["text"], "lang": r["lang"]} for r in map(good, range(2500))]
    rows[1700]["id"], rows[1800]["text"] = None, None  # a batch (1000 rows) with bad rows: row by row
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pq" / "a.parquet")
    source = {"name": "pq", "reader": "parquet", "path": "pq/*.parquet", "category": "qa",
              "options": {"text_field": "text", "id_field": "id", "metadata_fields": ["lang"], "batch_size": 1000}}
    fast, slow = make_reader(source, str(tmp_path)), make_reader(source, str(tmp_path))
    got = [d for c in fast.read_chunks("a.parquet") for d in c.documents()]
    slow._start_file("a.parquet")
    table = pq.read_table(tmp_path / "pq" / "a.parquet").to_pylist()
    want = [slow.get_document_from_dict(r, "a.parquet", i) for i, r in enumerate(table)]
    assert as_tuples(got) == as_tuples(want)
    assert sum(bool(d.metadata.get("read_error")) for d in got) == 2


def test_a_batch_of_documents_comes_back_as_the_same_documents():
    docs = [Document(text="甲", id="a", metadata={"source": "s", "category": "qa", "line": 1}),
            Document(text="", id="b", metadata={"source": "s", "read_error": "x", "line": 2}),
            Document(text="乙", id="c", metadata={"source": "t", "category": "qa", "flag": True, "n": [1, 2]})]
    batch = DocumentBatch.from_documents(docs)
    assert [(d.id, d.text, d.metadata) for d in batch.documents()] == [(d.id, d.text, d.metadata) for d in docs]
    assert [d.id for d in batch.take([2, 0]).documents()] == ["c", "a"]
    assert batch.column("category", "") == ["qa", "", "qa"]


def test_parquet_columns_of_a_batch_are_those_of_its_documents():
    docs = [Document(text="甲乙", id="a", metadata={"source": "s", "category": "qa", "department": "", "line": 1,
                                                    "native_id": "7", "file": "f"}),
            Document(text="丙", id="b", metadata={"source": "s", "category": "qa", "line": 2, "file": "f",
                                                 "duplicate_native_id": True, "score": 0.5, "tags": ["x"]}),
            Document(text="丁", id="c", metadata={"category": "kg", "department": None, "line": 3}),
            Document(text="戊", id="d", metadata={"source": "s", "removed_by": "x", "reason": "y"})]
    batch = DocumentBatch.from_documents(docs)
    assert _batch_columns(batch) == {k: v for k, v in _columns(batch.documents()).items()}
    uniform = DocumentBatch.from_documents(docs[:1] * 3)  # one key set: the one-group path
    assert _batch_columns(uniform) == _columns(uniform.documents())


def test_metadata_json_column_by_column_is_the_encoder_row_by_row():
    """``_extras_many`` (a column at a time, a column of one value written once) gives the JSON text
    ``_extras`` gives per row: for columns of one value of each type, where equal values differ in
    JSON (0.0 and -0.0, 1 and True and 1.0), and for mixed columns."""
    import random

    from curation.rows import _extras, _extras_many

    r = random.Random(3)
    columns = {"file": lambda i: "qa/a.jsonl", "license": lambda i: "许可 \"x\"", "line": lambda i: i,
               "one": lambda i: 1, "zero": lambda i: r.choice([0.0, -0.0]), "flag": lambda i: r.choice([1, True, 1.0]),
               "same_flag": lambda i: True, "mixed": lambda i: r.choice(["a", 2, None, [1], {"k": "v"}]),
               "native_id": lambda i: f"q{i:05d}"}
    for keys in (["file", "license", "one"], ["file", "line"], list(columns), ["zero", "file"], ["flag"], ["same_flag"]):
        metas = [{k: columns[k](i) for k in keys} for i in range(300)]
        assert _extras_many(metas) == [_extras(m) for m in metas], keys


def test_ids_and_templates_column_by_column():
    prefix = id_prefix("src", "qa/a.jsonl")
    keys = [0, 17, "id=abc", "id=abc#9", "id=中文"]
    assert stable_ids_after(prefix, "src", keys) == [stable_id_after(prefix, "src", k) for k in keys]
    records = [{"q": " 问 ", "a": "答{x}"}, {"q": "二", "a": "\x00<"}]
    for template in ("{q}\n{a}", "{{字面}}{q}：{a}", "{ q }-{a}"):
        assert templates.render_many(template, records) == [templates.render(template, r) for r in records]
    assert templates.render_many("{q}", [{"q": 1}]) is None  # a number: render's conversion, one at a time
    assert templates.render_many("{a.b}", [{"a": {"b": "x"}}]) is None  # a dotted path
    assert templates.render_many("{q}", [{"x": "y"}]) is None  # a missing field: render's error


def _build(raw: Path, tmp: Path, name: str, steps: str = "dedup: {threshold: 0.75}"):
    recipe = tmp / f"{name}.yaml"
    recipe.write_text(f"""\
name: {name}
kind: documents
sources:
  - {{name: qa_dump, reader: jsonl, path: 'qa/*.jsonl*', category: qa, license: test,
      options: {{template: "{{question}}\\n{{answer}}", id_field: id}}}}
steps:
  {steps}
""", encoding="utf-8")
    dv, stats = build(recipe, raw, Store(tmp / f"store-{name}"), work_root=tmp / f"work-{name}", progress=False)
    stage_a = json.loads(next((tmp / f"work-{name}").glob("*/logs/a/stats.json")).read_text())
    return dv, stats, stage_a


def test_dedup_only_build_in_batches_publishes_the_per_document_version(jsonl_folder, tmp_path, monkeypatch):
    dv, stats, stage_a = _build(jsonl_folder, tmp_path, "batched")
    reader_stats = next(s for s in stage_a if s["name"].endswith("recipe reader"))
    assert reader_stats["stats"]["batches"] >= 3  # it did run in batches
    # the per-document mode: one step that takes neither batches nor chunks turns both off
    monkeypatch.setattr(DropReadErrors, "takes_batches", False)
    monkeypatch.setattr(DropReadErrors, "takes_chunks", False)
    dv2, stats2, stage_a2 = _build(jsonl_folder, tmp_path, "per_document")
    assert "batches" not in next(s for s in stage_a2 if s["name"].endswith("recipe reader"))["stats"]
    assert dv.manifest["content_hash"] == dv2.manifest["content_hash"]
    assert dv.to_arrow().to_pylist() == dv2.to_arrow().to_pylist()
    assert dv.to_arrow("removed").to_pylist() == dv2.to_arrow("removed").to_pylist()
    s = stats["sources"]["qa_dump"]
    assert s == stats2["sources"]["qa_dump"]
    assert s["read"] == s["kept"] + s["removed"] == 3 * CHUNK_RECORDS + 300 + 40
    assert stats["removed_by_reason"] == stats2["removed_by_reason"]
    assert stats["removed_by_reason"]["reader:read_error"] == 5


# Every kind of stage-A step: two transforms, nine filters (``digit_ratio`` at 0.08 removes the
# records numbered 1000+ whose ``i % 13`` has two digits: 3 in 13, spread through every chunk),
# the signatures and the writer.
FULL = """normalize: {}
  pii: {}
  filters:
    min_length: {}
    mojibake: {}
    cjk_ratio: {}
    symbol_ratio: {}
    digit_ratio: {max_ratio: 0.08}
    boilerplate: {}
    line_repetition: {}
    char_repetition: {}
    lexicon_density: {terms: [发热, 咳嗽, 咽痛, 血常规, 胸片]}
  dedup: {threshold: 0.75}"""


def test_full_build_in_batches_and_chunks_publishes_the_per_document_version(jsonl_folder, tmp_path, monkeypatch):
    """Every step of FULL judges texts alone, so stage A runs on column batches; one step that
    reads Documents turns that into chunks of Documents, one that takes neither into one document
    at a time. All three publish the same rows, removals and per-step counters."""
    import curation.build.documents as documents_module
    import curation.build.reader as reader_module
    from curation.steps.filters.repetition import LineRepetitionFilter

    kinds = []
    stream_kind = documents_module.stream_kind
    monkeypatch.setattr(documents_module, "stream_kind", lambda steps: kinds.append(stream_kind(steps)) or kinds[-1])
    # batches of ~37 records and chunks of 37: boundaries fall anywhere, and the filters' removals
    # leave uneven ones
    monkeypatch.setattr(reader_module, "CHUNK_DOCS", 37)
    monkeypatch.setattr(reader_module, "CHUNK_CHARS", 37 * 60)
    dv, stats, stage_a = _build(jsonl_folder, tmp_path, "batched", FULL)
    monkeypatch.setattr(LineRepetitionFilter, "judges_texts", False)  # a filter of Documents: chunks
    dv1, stats1, stage_a1 = _build(jsonl_folder, tmp_path, "chunked", FULL)
    monkeypatch.setattr(DropReadErrors, "takes_chunks", False)  # one step without: one document at a time
    dv2, stats2, stage_a2 = _build(jsonl_folder, tmp_path, "per_document", FULL)
    assert kinds == ["batches", "chunks", "documents"]
    for stage in (stage_a, stage_a1):
        reader_stats = next(s for s in stage if s["name"].endswith("recipe reader"))["stats"]
        assert reader_stats["batches"] >= (3 * CHUNK_RECORDS + 340) // 45  # small batches / chunks indeed
    assert "batches" not in next(s for s in stage_a2 if s["name"].endswith("recipe reader"))["stats"]
    assert stats["removed_by_reason"]["digit_ratio"] > 1000  # removals inside every chunk
    # per step, the same totals, removals and changes (a counter's per-update mean and variance
    # depend on how many updates: one per chunk)
    def counters(stage):
        return {s["name"]: {k: v["total"] if isinstance(v, dict) else v for k, v in s["stats"].items()
                            if k != "batches"} for s in stage}
    for other, other_stats, other_a in ((dv1, stats1, stage_a1), (dv2, stats2, stage_a2)):
        assert stats["removed_by_reason"] == other_stats["removed_by_reason"]
        assert stats["sources"] == other_stats["sources"]
        assert dv.manifest["content_hash"] == other.manifest["content_hash"]
        assert dv.to_arrow().to_pylist() == other.to_arrow().to_pylist()
        assert dv.to_arrow("removed").to_pylist() == other.to_arrow("removed").to_pylist()
        assert counters(stage_a) == counters(other_a)
