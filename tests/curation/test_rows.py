"""The batched Parquet writer writes what datatrove's own ParquetWriter writes, stats included
(its document counter renamed)."""

from __future__ import annotations

import json
import math

import pyarrow.parquet as pq
import pytest
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.writers import ParquetWriter

from curation.metrics import batch_metric, count_metric
from curation.rows import DOC_SCHEMA, DOCUMENTS_WRITTEN, REMOVED_SCHEMA, RankParquetWriter, kept_adapter, removed_adapter


def _docs(n: int):
    for k in range(n):
        meta = {"source": f"s{k % 3}", "category": "qa", "department": ["", "urology", None][k % 3],
                "x": {"a": k, "b": "中文"}, "removed_by": "length", "reason": f"too short ({k})"}
        if k % 4:
            meta["token_count"] = k % 7 + 1
        text = "".join(chr(0x4E00 + (k * 7919 + j * 104729) % 20000) for j in range(20 + k % 200))  # incompressible
        yield Document(text=text, id=f"d{k:05d}", metadata=meta)


def _close(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return math.isclose(a, b, rel_tol=1e-12)


def _custom_adapter(self, doc: Document) -> dict:
    return {"id": doc.id, "text": doc.text[:5], "source": "custom", "category": "", "department": "",
            "n_chars": 5, "metadata": "{}"}


@pytest.mark.parametrize("adapter,schema", [(kept_adapter, DOC_SCHEMA), (removed_adapter, REMOVED_SCHEMA),
                                            (_custom_adapter, DOC_SCHEMA)])
@pytest.mark.parametrize("max_file_size", [5 * 2**30, 20_000])
def test_batched_writer_matches_datatrove_parquet_writer(tmp_path, adapter, schema, max_file_size):
    for name, cls in (("stock", ParquetWriter), ("batched", RankParquetWriter)):
        LocalPipelineExecutor(
            pipeline=[lambda data, rank=0, world_size=1: _docs(2_500),
                      cls(str(tmp_path / name), adapter=adapter, schema=schema, compression="zstd",
                          batch_size=300, max_file_size=max_file_size)],
            tasks=1, logging_dir=str(tmp_path / f"logs-{name}")).run()
    files = sorted(p.name for p in (tmp_path / "stock").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "batched").iterdir())
    assert (len(files) > 1) == (max_file_size < 2**20)  # the small limit really switched files
    for f in files:
        a, b = pq.ParquetFile(tmp_path / "stock" / f), pq.ParquetFile(tmp_path / "batched" / f)
        assert a.read().equals(b.read()), f
        assert [a.metadata.row_group(i).num_rows for i in range(a.num_row_groups)] == \
               [b.metadata.row_group(i).num_rows for i in range(b.num_row_groups)]
    stock = json.loads((tmp_path / "logs-stock" / "stats.json").read_text())[-1]["stats"]
    batched = json.loads((tmp_path / "logs-batched" / "stats.json").read_text())[-1]["stats"]
    assert "XXXXX.parquet" not in batched and batched[DOCUMENTS_WRITTEN] == stock.pop("XXXXX.parquet") == 2_500
    stock[DOCUMENTS_WRITTEN] = batched[DOCUMENTS_WRITTEN]
    assert stock["doc_len_tokens"]["n"] == 1875 and _close(stock, batched)


def _parquet_files(folder):
    return {p.name: pq.ParquetFile(p) for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("max_file_size", [5 * 2**30, 20_000])
def test_write_batch_in_any_pieces_writes_the_same_files(tmp_path, max_file_size):
    """As an exclusion writer, documents come a few at a time (a step's removed documents of one
    chunk: none, one, more than a row group). The row groups are still exactly ``batch_size``, the
    rest written at ``close``: the same files as datatrove's writer one document at a time."""
    from itertools import cycle

    options = dict(adapter=removed_adapter, schema=REMOVED_SCHEMA, compression="zstd", batch_size=300,
                   max_file_size=max_file_size)
    LocalPipelineExecutor(pipeline=[lambda data, rank=0, world_size=1: _docs(2_500),
                                    ParquetWriter(str(tmp_path / "stock"), **options)],
                          tasks=1, logging_dir=str(tmp_path / "logs-stock")).run()
    docs, start = list(_docs(2_500)), 0
    with RankParquetWriter(str(tmp_path / "pieces"), **options) as writer:
        for n in cycle([0, 1, 7, 299, 301, 650, 3]):
            writer.write_batch(docs[start:start + n])
            start += n
            if start >= len(docs):
                break
    stock, pieces = _parquet_files(tmp_path / "stock"), _parquet_files(tmp_path / "pieces")
    assert stock.keys() == pieces.keys() and (len(stock) > 1) == (max_file_size < 2**20)
    for name, a in stock.items():
        b = pieces[name]
        assert a.read().equals(b.read()), name
        assert [a.metadata.row_group(i).num_rows for i in range(a.num_row_groups)] == \
               [b.metadata.row_group(i).num_rows for i in range(b.num_row_groups)], name


def test_batch_metric_equals_per_value_updates():
    from datatrove.utils.stats import MetricStats

    values = [3, 1, 4, 1, 5, 9, 2, 6]
    one = MetricStats()
    for v in values:
        one.update(v)
    both = batch_metric(values[:3]) + batch_metric(values[3:])
    assert (both.total, both.n, both.min, both.max) == (one.total, one.n, one.min, one.max)
    assert isinstance(both.total, int)
    assert math.isclose(both.mean, one.mean) and math.isclose(both.variance, one.variance)
    ones = MetricStats()
    for _ in range(5):
        ones.update(1)
    assert count_metric(5).to_dict() == ones.to_dict() == 5
