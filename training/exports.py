"""Exporters for training frameworks, registered in ``curation.exports.EXPORTERS``.

``curation.exports`` imports this module lazily (``cumed datasets export REF --format F``).

``llamafactory``  ``conversations`` -> one ShareGPT-style JSON file per split
                  (``[{"messages": [{"role", "content"}], "id", "source", "department"}]``) and a
                  ``dataset_info.json`` whose entries name the file, ``formatting: sharegpt``,
                  explicit ``columns`` (messages), ``tags`` (role_tag, content_tag, user_tag,
                  assistant_tag, system_tag) and the file's ``file_sha1`` (LLaMA-Factory's
                  integrity check). Entry names: ``<name>_<split>`` (``cumed-sft_train`` ...).
                  A leading system turn stays in ``messages``: LLaMA-Factory's sharegpt converter
                  takes it as the system prompt when ``system_tag`` matches.
``trl``           ``conversations`` -> a Hugging Face ``DatasetDict`` (one ``Dataset`` per split,
                  ``messages`` column of ``{role, content}`` plus ``id``, ``source``,
                  ``department``) written with ``save_to_disk``; ``datasets.load_from_disk(out/trl)``
                  feeds ``trl.SFTTrainer`` directly (it applies the tokenizer's chat template to
                  ``messages``).

``llamafactory`` streams the version batch by batch; ``trl`` reads the version's table once
(id, messages, source, department: fine at SFT sizes) and ``datasets`` then memory-maps the
Arrow files it wrote.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from curation.errors import CumedError
from curation.exports import exporter
from curation.store import DatasetVersion

SPLITS = ("train", "validation", "test")
LF_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
           "system_tag": "system"}


def _need_conversations(dv: DatasetVersion, fmt: str) -> None:
    if dv.kind != "conversations":
        raise CumedError(f"{fmt} export needs a conversations dataset; {dv.ref} is {dv.kind}: use --format jsonl or parquet")


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _split_names(dv: DatasetVersion) -> list[str]:
    found = set()
    for batch in dv.iter_batches(columns=["split"]):
        found.update(batch.column("split").to_pylist())
    return [s for s in SPLITS if s in found] + sorted(found - set(SPLITS))


@exporter("llamafactory")
def export_llamafactory(dv: DatasetVersion, out: Path) -> dict:
    _need_conversations(dv, "llamafactory")
    info, files, rows = {}, [], 0
    for split in _split_names(dv):
        path = out / f"{dv.name}-v{dv.version}-{split}.json"
        n = 0
        with open(path, "w", encoding="utf-8") as f:
            f.write("[\n")
            for batch in dv.iter_batches(columns=["id", "messages", "source", "department", "split"]):
                for row in batch.to_pylist():
                    if row["split"] != split:
                        continue
                    rec = {"messages": [{"role": m["role"], "content": m["content"]} for m in row["messages"]],
                           "id": row["id"], "source": row["source"], "department": row["department"]}
                    f.write((",\n" if n else "") + json.dumps(rec, ensure_ascii=False))
                    n += 1
            f.write("\n]\n")
        info[f"{dv.name}_{split}"] = {
            "file_name": path.name,
            "formatting": "sharegpt",
            "columns": {"messages": "messages"},
            "tags": dict(LF_TAGS),
            "file_sha1": _sha1(path),
        }
        files.append(str(path))
        rows += n
    info_path = out / "dataset_info.json"
    existing = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    existing.update(info)  # add our entries beside any the folder already lists
    info_path.write_text(json.dumps(existing, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return {"files": files + [str(info_path)], "rows": rows, "datasets": sorted(info)}


@exporter("trl")
def export_trl(dv: DatasetVersion, out: Path) -> dict:
    _need_conversations(dv, "trl")
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - depends on the install
        raise CumedError("trl export needs Hugging Face datasets: pip install 'cumed[hf]'") from e
    cols = ["id", "messages", "source", "department", "split"]
    table = dv.to_arrow(columns=cols)
    import pyarrow.compute as pc

    parts = {}
    for split in _split_names(dv):
        t = table.filter(pc.equal(table.column("split"), split)).drop(["split"])
        parts[split] = datasets.Dataset(t)
    dd = datasets.DatasetDict(parts)
    target = out / "trl"
    dd.save_to_disk(str(target))
    return {"files": [str(target)], "rows": sum(len(d) for d in parts.values()),
            "splits": {k: len(v) for k, v in parts.items()}, "load": f"datasets.load_from_disk({str(target)!r})"}
