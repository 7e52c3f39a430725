"""Export a store version to the formats its consumers read.

A registry maps ``--format`` names to functions ``(version, out_dir) -> dict``. The formats of
any consumer live here; those of the training engines (LLaMA-Factory, TRL, Megatron) register
themselves from ``training.exports``, which the CLI imports (the foundation names no wing). Every exporter streams batch
by batch, so an export never needs the dataset in memory.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cumed.errors import CumedError
from cumed.store import DatasetVersion

EXPORTERS: dict[str, Callable[[DatasetVersion, Path], dict]] = {}


def exporter(name: str):
    def register(fn):
        EXPORTERS[name] = fn
        return fn

    return register


@exporter("jsonl")
def export_jsonl(dv: DatasetVersion, out: Path) -> dict:
    """UTF-8 JSON Lines, no ASCII escaping (Chinese stays readable)."""
    path = out / f"{dv.name}-v{dv.version}.jsonl"
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for batch in dv.iter_batches():
            for row in batch.to_pylist():
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
    return {"files": [str(path)], "rows": n}


@exporter("parquet")
def export_parquet(dv: DatasetVersion, out: Path) -> dict:
    """The version's own Parquet files, byte-identical (their sha256 stays in the manifest)."""
    files = []
    for f in dv.files("data"):
        dst = out / f.name
        shutil.copyfile(f, dst)
        files.append(str(dst))
    return {"files": files, "rows": dv.rows}


@exporter("csv")
def export_csv(dv: DatasetVersion, out: Path) -> dict:
    """Flat kinds only (documents, preferences); nested columns have no CSV form."""
    if dv.kind not in ("documents", "preferences"):
        raise CumedError(f"csv export needs a flat dataset; {dv.ref} is {dv.kind}: use --format jsonl or parquet")
    path = out / f"{dv.name}-v{dv.version}.csv"
    n = 0
    writer = None
    with open(path, "wb") as f:
        for batch in dv.iter_batches():
            if writer is None:
                writer = pacsv.CSVWriter(f, batch.schema)
            writer.write_batch(batch)
            n += batch.num_rows
        if writer is not None:
            writer.close()
    return {"files": [str(path)], "rows": n}


_SPLIT_OK = re.compile(r"^\w+(\.\w+)*$")


def _split_name(value) -> str:
    name = re.sub(r"[^\w.]+", "_", str(value or "train")).strip("._") or "train"
    return name if _SPLIT_OK.match(name) else "train"


@exporter("hf")
def export_hf(dv: DatasetVersion, out: Path) -> dict:
    """A Hugging Face dataset folder: ``datasets.load_dataset(DIR)`` loads it with its splits.

    Rows with a ``split`` column go to one Parquet file per split; otherwise everything is
    ``train``. README.md carries a YAML header (``configs`` with the split files, ``dataset_info``
    split counts, licenses) and a body with sources, licenses, counts and lineage.
    """
    data = out / "data"
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    writers: dict[str, pq.ParquetWriter] = {}
    counts: dict[str, int] = {}
    sources: dict[str, int] = {}
    try:
        for batch in dv.iter_batches():
            table = pa.Table.from_batches([batch])
            if "source" in table.column_names:
                for k, v in zip(*pc.value_counts(table.column("source")).flatten()):
                    sources[str(k.as_py())] = sources.get(str(k.as_py()), 0) + v.as_py()
            if "split" in table.column_names:
                names = [_split_name(v) for v in table.column("split").to_pylist()]
                groups: dict[str, list[int]] = {}
                for i, n in enumerate(names):
                    groups.setdefault(n, []).append(i)
                parts = [(n, table.take(pa.array(idx))) for n, idx in groups.items()]
            else:
                parts = [("train", table)]
            for n, t in parts:
                if n not in writers:
                    writers[n] = pq.ParquetWriter(str(data / f"{n}-00000-of-00001.parquet"), t.schema, compression="zstd")
                writers[n].write_table(t)
                counts[n] = counts.get(n, 0) + t.num_rows
    finally:
        for w in writers.values():
            w.close()
    if not counts:  # an empty version still loads, as an empty train split
        empty = dv.to_arrow()
        pq.write_table(empty, str(data / "train-00000-of-00001.parquet"))
        counts["train"] = 0
    order = sorted(counts, key=lambda n: ({"train": 0, "validation": 1, "test": 2}.get(n, 3), n))
    m = dv.manifest
    per_source = (m.get("stats") or {}).get("sources") or {}
    licenses = sorted({str(s.get("license")) for s in per_source.values() if s.get("license")}
                      | ({str(m["license"])} if m.get("license") else set()))
    header = {
        "pretty_name": f"{dv.name} v{dv.version}",
        "configs": [{"config_name": "default", "default": True,
                     "data_files": [{"split": n, "path": f"data/{n}-*.parquet"} for n in order]}],
        "dataset_info": {"config_name": "default",
                         "splits": [{"name": n, "num_examples": counts[n]} for n in order]},
    }
    if len(licenses) == 1:
        header["license"] = licenses[0].lower()
    elif licenses:
        header["license"] = "other"
    import yaml

    body = [f"# {dv.name} v{dv.version}", "",
            f"Exported by cumed from `{dv.ref}` (kind `{dv.kind}`, content hash `{m.get('content_hash', '')}`).", "",
            "## Splits", "", "| split | rows |", "|---|---|"]
    body += [f"| {n} | {counts[n]:,} |" for n in order]
    body += ["", f"Removed by curation: {dv.removed_rows:,} rows (not exported).", "", "## Sources", "",
             "| source | category | license | rows |", "|---|---|---|---|"]
    for src in sorted(set(per_source) | set(sources)):
        s = per_source.get(src, {})
        body.append(f"| {src} | {s.get('category', '')} | {s.get('license', '') or 'unspecified'} | "
                    f"{sources.get(src, s.get('kept', 0)):,} |")
    body += ["", "## Licenses", "", (", ".join(licenses) if licenses else "unspecified: check each source's terms"),
             "", "## Lineage", "", "```json", json.dumps(m.get("lineage", {}), ensure_ascii=False, indent=2), "```", ""]
    card = dv.card().strip()
    if card:
        body += ["## Original dataset card", "", card, ""]
    readme = out / "README.md"
    readme.write_text("---\n" + yaml.safe_dump(header, allow_unicode=True, sort_keys=False) + "---\n\n" + "\n".join(body),
                      encoding="utf-8")
    return {"files": [str(data / f"{n}-00000-of-00001.parquet") for n in order] + [str(readme)],
            "rows": sum(counts.values()), "splits": {n: counts[n] for n in order}}


def export(dv: DatasetVersion, fmt: str, out: str | Path, *, tokenizer: str | Path | None = None) -> dict:
    """Run the ``fmt`` exporter into ``out`` (created).

    ``tokenizer`` goes only to exporters whose signature names it (those that write token ids,
    e.g. megatron); giving it to any other format is an error, not an option silently ignored.
    """
    import inspect

    if fmt not in EXPORTERS:
        raise CumedError(f"unknown export format {fmt!r}; use one of {', '.join(sorted(EXPORTERS))} (the training "
                         f"engines' formats llamafactory, llamafactory-rm, trl, trl-reward and megatron register when Python code "
                         f"runs `import training.exports`; the cumed CLI does)")
    fn = EXPORTERS[fmt]
    options = {}
    if tokenizer is not None:
        takes = sorted(n for n, f in EXPORTERS.items() if "tokenizer" in inspect.signature(f).parameters)
        if fmt not in takes:
            raise CumedError(f"{fmt} export takes no tokenizer; drop --tokenizer (formats that take one: "
                             f"{', '.join(takes) or 'none installed'})")
        options["tokenizer"] = tokenizer
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = fn(dv, out, **options)
    return {"ref": dv.ref, "format": fmt, "out": str(out), **result}


__all__ = ["EXPORTERS", "export", "exporter", "pq"]
