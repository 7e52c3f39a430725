"""Readers: one datatrove reader per source *shape*, built from a recipe's ``sources:`` entry.

========================  ====================================================================
``csv``                   CSV rows through a template (Toyhom consultations)
``disease_cards``         39health disease table → one encyclopedia entry per disease
``json``                  JSON array / JSON Lines records, per-shape templates (CMtMedQA...)
``text_blocks``           blank-line separated blocks (Toyhom ``内科.txt``)
``markdown``              one document per Markdown paper (ChinaXiv), references/images dropped
``kg_triples``            knowledge-graph triples → one document per subject (CMeKG)
``jsonl``                 your own JSON Lines (``.gz``/``.zst``/``.bz2`` by extension), datatrove's JsonlReader
``parquet``               your own Parquet rows, datatrove's ParquetReader
``hf``                    a saved ``datasets`` folder or Hub-layout Parquet shards
========================  ====================================================================

The last three read any data a user brings (options ``text_field`` or ``template``,
``id_field``, ``metadata_fields``: ``curation.readers.records``), local or ``s3://``::

    - {name: dumps, reader: jsonl, path: 'jsonl/*.jsonl.gz', category: qa, options: {text_field: text, id_field: id}}

``make_reader(source, raw_root)`` turns one recipe entry into a reader::

    - name: toyhom_csv
      reader: csv
      path: Toyhom_Chinese_medical_dialogue/样例_内科5000-6000.csv   # relative to raw_root; globs ok
      category: qa
      department: ""          # default when a record has none
      license: MIT
      options: {encoding: gb18030, template: "{title}\\n{ask}\\n{answer}", department_field: department}

Every reader yields ``Document(text, id=stable_id(source, relpath, key), metadata)`` with
``source``, ``category``, ``department``, ``file`` and, for a record it could not parse, an
empty text and ``read_error`` (see ``curation.readers.base``).
"""

from __future__ import annotations

import glob as _glob
import os

from curation.readers.base import ENCODINGS, CumedReader, one_of
from curation.readers.csv_table import CsvReader
from curation.readers.disease_cards import DiseaseCardsReader
from curation.readers.hf import HfDatasetReader
from curation.readers.json_records import JsonReader
from curation.readers.jsonl import JsonlFilesReader
from curation.readers.kg_triples import KgTriplesReader
from curation.readers.markdown import MarkdownReader
from curation.readers.parquet import ParquetFilesReader
from curation.readers.text_blocks import TextBlocksReader

READERS: dict[str, type[CumedReader]] = {
    "csv": CsvReader,
    "disease_cards": DiseaseCardsReader,
    "json": JsonReader,
    "text_blocks": TextBlocksReader,
    "markdown": MarkdownReader,
    "kg_triples": KgTriplesReader,
    "jsonl": JsonlFilesReader,
    "parquet": ParquetFilesReader,
    "hf": HfDatasetReader,
}

# keys of a recipe ``sources:`` entry; ``enabled`` and ``note`` are for the recipe builder/card
SOURCE_KEYS = ("name", "reader", "path", "category", "department", "license", "options", "enabled", "note")
REQUIRED_KEYS = ("name", "reader", "path", "category")
# options every reader accepts on top of its own
COMMON_OPTIONS = ("synthetic",)

__all__ = ["READERS", "SOURCE_KEYS", "ENCODINGS", "CumedReader", "make_reader", "split_path", *[c.__name__ for c in READERS.values()]]


def split_path(raw_root: str, path: str) -> tuple[str, str, str]:
    """``(data_folder, glob_pattern, relpath_prefix)`` for a recipe path relative to ``raw_root``.

    The folder is the longest leading part without glob characters. A path without a glob names
    one file: its first character is wrapped in ``[]`` so that datatrove (which turns a plain
    pattern ``x`` into ``*x``) matches that file only.
    """
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"bad source path {path!r}: give a file or glob relative to the raw root, without '..'")
    k = next((i for i, p in enumerate(parts) if _glob.has_magic(p)), None)
    if k is None:
        k = len(parts) - 1
        first = parts[k][0]
        pattern = f"[{first}]{parts[k][1:]}" if first not in "[]!^-\\" else _glob.escape(parts[k])
    else:
        pattern = "/".join(parts[k:])
    prefix = "/".join(parts[:k])
    root = str(raw_root).rstrip("/")
    folder = f"{root}/{prefix}" if prefix else root
    if "://" not in folder:
        folder = os.path.abspath(folder)
    return folder, pattern, prefix


def make_reader(source: dict, raw_root: str, registry: dict | None = None, kind: str = "reader", **kw) -> CumedReader:
    """Build the reader for one recipe ``sources:`` entry; ``kw`` go to the reader (limit, ...).

    ``registry`` maps reader names to classes (``READERS`` by default; the SFT package passes its
    conversation readers). Raises ``ValueError`` naming the source and the allowed choices for an
    unknown key, reader, option, encoding or category.
    """
    registry = READERS if registry is None else registry
    name = source.get("name") or "<unnamed>"
    unknown = [k for k in source if k not in SOURCE_KEYS]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in source {name}; use {one_of(SOURCE_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if not source.get(k)]
    if missing:
        raise ValueError(f"source {name} has no {missing[0]!r}; every source needs {one_of(REQUIRED_KEYS)}")
    reader = source["reader"]
    if reader not in registry:
        raise ValueError(f"unknown {kind} {reader!r} in source {name}; use {one_of(registry)}")
    cls = registry[reader]
    options = dict(source.get("options") or {})
    allowed = (*cls.options, *COMMON_OPTIONS)
    bad = [k for k in options if k not in allowed]
    if bad:
        raise ValueError(f"unknown option {bad[0]!r} for reader {reader} in source {name}; use {one_of(allowed)}")
    folder, pattern, prefix = split_path(raw_root, source["path"])
    return cls(
        folder,
        source=name,
        category=source["category"],
        department=source.get("department") or "",
        license=source.get("license"),
        relpath_prefix=prefix,
        glob_pattern=pattern,
        **options,
        **kw,
    )
