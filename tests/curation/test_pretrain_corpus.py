"""The real pretraining recipe on ../shared/data/raw: Table-1 accounting, reasons, report."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from curation.build import build
from curation.report import write_report
from cumed.store import Store

REPO = Path(__file__).resolve().parents[2]

# Record counts of each source as published by its authors (see ../shared/data/README.md).
SOURCE_COUNTS = {
    "health39_disease_cards": 14_336,
    "toyhom_csv": 7_644,
    "toyhom_im_blocks": 4_048,
    "medicalgpt_rag_corpus": 87,
    "cmekg_triples": 27_403,
    "chinaxiv_medical": 765,
    "sjtu_book_data": 30,
}


@pytest.fixture(scope="module")
def corpus(raw_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pretrain")
    store = Store(tmp / "store")
    dv, stats = build(REPO / "datasets" / "cumed-pretrain.yaml", raw_root, store, workers=2,
                      work_root=tmp / "work", progress=False)
    return dv, stats, tmp


def test_every_source_read_in_full_and_accounted_for(corpus):
    dv, stats, _ = corpus
    kept, removed = dv.to_arrow(columns=["source"]), dv.to_arrow("removed", columns=["source", "reason"])
    for name, expected in SOURCE_COUNTS.items():
        s = stats["sources"][name]
        assert s["read"] == expected, name
        n_kept = pc.sum(pc.equal(kept.column("source"), name)).as_py() or 0
        n_removed = pc.sum(pc.equal(removed.column("source"), name)).as_py() or 0
        assert (n_kept, n_removed) == (s["kept"], s["removed"]), name
        assert n_kept + n_removed == expected, name
    assert all(r and r.strip() for r in removed.column("reason").to_pylist())
    assert dv.rows + dv.removed_rows == sum(SOURCE_COUNTS.values())


def test_a_reader_would_keep_most_of_each_real_source(corpus):
    _, stats, _ = corpus
    # Real doctor answers, encyclopedia cards and papers are what the corpus is for: the Chinese
    # filters must not do what stock English-calibrated filters do (keep nothing).
    for name in ("health39_disease_cards", "toyhom_csv", "cmekg_triples", "chinaxiv_medical"):
        s = stats["sources"][name]
        assert s["kept"] / s["read"] > 0.85, (name, s)


def test_text_block_copies_of_the_csv_are_exact_duplicates_naming_the_csv_row(corpus):
    dv, _, _ = corpus
    removed = dv.to_pandas("removed")
    kept_ids = set(dv.to_arrow(columns=["id"]).column("id").to_pylist())
    dups = removed[(removed.source == "toyhom_im_blocks") & (removed.removed_by == "dedup")]
    assert len(dups) > 3_000
    targets = [json.loads(m)["duplicate_of"] for m in dups.metadata]
    assert all(t in kept_ids for t in targets)
    assert sum(t.startswith("toyhom_csv-") for t in targets) / len(targets) > 0.95


def test_lineage_and_stats_in_manifest(corpus, raw_root):
    dv, _, _ = corpus
    m = dv.manifest
    lin = m["lineage"]
    assert lin["recipe"]["sha256"] and lin["config_hash"] and lin["code_version"]
    paths = {i["path"] for i in lin["inputs"]}
    assert "CMeKG_pycmekg/cmekg_triples.tsv" in paths and all(len(i["sha256"]) == 64 for i in lin["inputs"])
    st = m["stats"]
    assert "cumed-approx" in st["tokenizer"]
    assert set(st["categories"]) >= {"encyclopedia", "qa", "knowledge_graph", "textbook"}
    assert st["steps"]["normalize"]["changed"] > 0
    assert Store(dv.path.parents[1]).verify(dv.ref).ok


def test_html_report_has_plots_and_table(corpus):
    dv, _, tmp = corpus
    html = write_report(dv, tmp / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 4
    assert "toyhom_csv" in html and "dedup:exact_duplicate" in html
