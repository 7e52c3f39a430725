"""The ``labels`` version: one row per document a model scored, with the documents version as parent.

Rows: ``id`` (the document's), ``source``, ``score`` (0-5), ``label`` (``keep`` when score >=
threshold, else ``discard``), ``reason``, ``model``, ``rubric`` (its version, e.g. ``quality-v1``).
Texts stay in the parent (lineage ``parents``), which ``quality train --labels`` reads them from.
Lineage: ``models`` the target (name, server kind, endpoint host; never a key or a full URL);
``scoring`` the rubric, its sha256, threshold, sample rule and sampling params.
"""

from __future__ import annotations

import pyarrow as pa

from cumed.lineage import build_lineage, config_hash
from cumed.schemas import schema_for

CODE_PACKAGES = ("cumed", "annotation")


def label_of(score: float, threshold: float) -> str:
    return "keep" if score >= threshold else "discard"


def publish_labels(store, name: str, src, rows: list[dict], target, scoring: dict, stats: dict):
    rows = sorted(rows, key=lambda r: r["id"])
    table = pa.Table.from_pylist(rows, schema=schema_for("labels"))
    lineage = build_lineage(recipe=None, config_hash=config_hash({"parent": src.ref, "content_hash": src.content_hash,
                                                                  "model": target.identity(), **scoring}),
                            code_packages=CODE_PACKAGES, parents=[src.ref], models=[target.public()],
                            executor="local", scoring=scoring)
    keep = sum(r["label"] == "keep" for r in rows)
    card = (f"# {name}: {scoring['rubric']} scores of {src.ref} by {target.name}\n\n"
            f"{len(rows)} documents scored 0-5 with the {scoring['rubric_version']} rubric; {keep} keep "
            f"(score >= {scoring['threshold']:g}), {len(rows) - keep} discard. Sample: {scoring['sample']}.\n")
    return store.publish(name, table, kind="labels", stats=stats, lineage=lineage, card=card)
