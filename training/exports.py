"""Exporters for training frameworks, registered in ``cumed.exports.EXPORTERS``.

Registered into ``cumed.exports`` when imported; the CLI imports it (``cumed datasets export REF --format F``).

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
``trl-reward``    ``preferences`` -> a ``DatasetDict`` (one ``Dataset`` per split) with ``prompt``, ``chosen``,
                  ``rejected``, ``margin`` (+ ``prompt_id``), written with ``save_to_disk``
                  (``out/trl-reward``): the standard (non-conversational) preference format that
                  ``trl.RewardTrainer`` tokenises itself (it concatenates prompt + response and adds
                  EOS); ``margin`` enters its loss as ``-logsigmoid(r_c - r_r - margin)``.
``llamafactory-rm`` ``preferences`` -> one JSON file per split in LLaMA-Factory's ranking format
                  (sharegpt: ``messages`` = the user turn, ``chosen``/``rejected`` = one assistant
                  message each) and ``dataset_info.json`` entries with ``ranking: true`` and explicit
                  ``columns`` (messages, chosen, rejected) and ``tags``; without the columns
                  LLaMA-Factory fails with ``KeyError: None``. Entry names ``<name>_<split>``.

``llamafactory`` streams the version batch by batch; ``trl`` reads the version's table once
(id, messages, source, department: fine at SFT sizes) and ``datasets`` then memory-maps the
Arrow files it wrote.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cumed.errors import CumedError
from cumed.exports import exporter
from cumed.store import DatasetVersion

SPLITS = ("train", "validation", "test")
LF_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
           "system_tag": "system"}


def _need_conversations(dv: DatasetVersion, fmt: str) -> None:
    if dv.kind != "conversations":
        raise CumedError(f"{fmt} export needs a conversations dataset; {dv.ref} is {dv.kind}: use --format jsonl or parquet")


def _sha1(path: Path) -> str:
    """sha1, not cumed.hashing's sha256: it is the hash LLaMA-Factory checks ``file_sha1`` against."""
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


def _write_llamafactory(dv: DatasetVersion, out: Path, columns: list[str], record, entry: dict) -> dict:
    """One ShareGPT JSON array per split plus its ``dataset_info.json`` entry (``entry`` + file,
    tags, sha1); entries the folder already lists are kept beside ours."""
    info, files, rows = {}, [], 0
    for split in _split_names(dv):
        path = out / f"{dv.name}-v{dv.version}-{split}.json"
        n = 0
        with open(path, "w", encoding="utf-8") as f:
            f.write("[\n")
            for batch in dv.iter_batches(columns=[*columns, "split"]):
                for row in batch.to_pylist():
                    if row["split"] != split:
                        continue
                    f.write((",\n" if n else "") + json.dumps(record(row), ensure_ascii=False))
                    n += 1
            f.write("\n]\n")
        info[f"{dv.name}_{split}"] = {"file_name": path.name, "formatting": "sharegpt", **entry,
                                      "tags": dict(LF_TAGS), "file_sha1": _sha1(path)}
        files.append(str(path))
        rows += n
    info_path = out / "dataset_info.json"
    existing = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    existing.update(info)
    info_path.write_text(json.dumps(existing, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return {"files": files + [str(info_path)], "rows": rows, "datasets": sorted(info)}


@exporter("llamafactory")
def export_llamafactory(dv: DatasetVersion, out: Path) -> dict:
    _need_conversations(dv, "llamafactory")
    return _write_llamafactory(
        dv, out, ["id", "messages", "source", "department"],
        lambda row: {"messages": [{"role": m["role"], "content": m["content"]} for m in row["messages"]],
                     "id": row["id"], "source": row["source"], "department": row["department"]},
        {"columns": {"messages": "messages"}},
    )


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


def _need_preferences(dv: DatasetVersion, fmt: str) -> None:
    if dv.kind != "preferences":
        raise CumedError(f"{fmt} export needs a preferences dataset; {dv.ref} is {dv.kind}: "
                         f"build one with cumed rank pairs RANKINGS_REF")


@exporter("trl-reward")
def export_trl_reward(dv: DatasetVersion, out: Path) -> dict:
    _need_preferences(dv, "trl-reward")
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - depends on the install
        raise CumedError("trl-reward export needs Hugging Face datasets: pip install 'cumed[hf]'") from e
    import pyarrow.compute as pc

    cols = ["prompt_id", "prompt", "chosen", "rejected", "margin", "split"]
    table = dv.to_arrow(columns=cols)
    parts = {}
    for split in _split_names(dv):
        t = table.filter(pc.equal(table.column("split"), split)).drop(["split"])
        parts[split] = datasets.Dataset(t.select(["prompt", "chosen", "rejected", "margin", "prompt_id"]))
    target = out / "trl-reward"
    datasets.DatasetDict(parts).save_to_disk(str(target))
    return {"files": [str(target)], "rows": sum(len(d) for d in parts.values()),
            "splits": {k: len(v) for k, v in parts.items()}, "load": f"datasets.load_from_disk({str(target)!r})"}


@exporter("llamafactory-rm")
def export_llamafactory_rm(dv: DatasetVersion, out: Path) -> dict:
    _need_preferences(dv, "llamafactory-rm")
    return _write_llamafactory(
        dv, out, ["prompt_id", "prompt", "chosen", "rejected", "margin"],
        lambda row: {"messages": [{"role": "user", "content": row["prompt"]}],
                     "chosen": {"role": "assistant", "content": row["chosen"]},
                     "rejected": {"role": "assistant", "content": row["rejected"]},
                     "prompt_id": row["prompt_id"], "margin": row["margin"]},
        # LLaMA-Factory needs explicit columns for ranking data, or loading fails with KeyError: None.
        {"ranking": True, "columns": {"messages": "messages", "chosen": "chosen", "rejected": "rejected"}},
    )


# --------------------------------------------------------------------------- megatron
# ``megatron``      ``documents`` (``text``) or ``conversations`` (turn contents joined by new lines)
#                   -> Megatron-LM's indexed dataset ``<name>-v<N>_00000_tokens.{bin,idx}``, written by
#                   datatrove's ``MegatronDocumentTokenizer`` (one sequence per document, ``</s>``
#                   appended). The tokenizer is a local ``tokenizer.json`` (nothing is downloaded), the
#                   file or its folder: ``--tokenizer`` (``tokenizer=``), else ``$CUMED_MEGATRON_TOKENIZER``,
#                   else ``<out>/tokenizer.json``.
#                   Train with ``--data-path <out>/<name>-v<N>_00000_tokens`` and the same tokenizer.

MEGATRON_TOKENIZER_ENV = "CUMED_MEGATRON_TOKENIZER"


def _megatron_tokenizer(out: Path, tokenizer: str | Path | None) -> Path:
    import os

    cand = tokenizer or os.environ.get(MEGATRON_TOKENIZER_ENV) or out / "tokenizer.json"
    p = Path(cand)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise CumedError(f"megatron export needs a local tokenizer.json: {p} not found; pass --tokenizer path/to/tokenizer "
                         f"(e.g. a folder from 'cumed train tokenizer'), set {MEGATRON_TOKENIZER_ENV}, or copy "
                         f"tokenizer.json into {out}")
    return p


def _megatron_texts(dv: DatasetVersion):
    from datatrove.data import Document

    if dv.kind == "documents":
        for batch in dv.iter_batches(columns=["id", "text"]):
            for row in batch.to_pylist():
                yield Document(text=row["text"], id=row["id"])
    elif dv.kind == "conversations":
        for batch in dv.iter_batches(columns=["id", "messages"]):
            for row in batch.to_pylist():
                yield Document(text="\n".join(m["content"] for m in row["messages"]), id=row["id"])
    else:
        raise CumedError(f"megatron export needs documents or conversations; {dv.ref} is {dv.kind}: use --format jsonl")


@exporter("megatron")
def export_megatron(dv: DatasetVersion, out: Path, tokenizer: str | Path | None = None, eos_token: str | None = None) -> dict:
    try:
        from datatrove.pipeline.tokens.megatron_tokenizer import MegatronDocumentTokenizer
    except ImportError as e:  # pragma: no cover - depends on the install
        raise CumedError("megatron export needs datatrove's tokenizer step: pip install 'datatrove[processing]'") from e
    tok_path = _megatron_tokenizer(Path(out), tokenizer)
    if eos_token is None:
        cfg_path = tok_path.parent / "tokenizer_config.json"
        eos_token = (json.loads(cfg_path.read_text(encoding="utf-8")).get("eos_token") if cfg_path.is_file() else None) or "</s>"
        if isinstance(eos_token, dict):
            eos_token = eos_token.get("content", "</s>")
    step = MegatronDocumentTokenizer(output_folder=str(out), save_filename=f"{dv.name}-v{dv.version}",
                                     tokenizer_name_or_path=str(tok_path), eos_token=eos_token)
    if step.tokenizer.token_to_id(eos_token) is None:
        raise CumedError(f"eos token {eos_token!r} is not in {tok_path}; pass the tokenizer's end-of-document token")
    step.run(_megatron_texts(dv), rank=0, world_size=1)
    prefix = Path(out) / f"{dv.name}-v{dv.version}_00000_tokens"
    stats = step.stats.get_repr() if hasattr(step.stats, "get_repr") else ""
    return {"files": [str(prefix) + ".bin", str(prefix) + ".idx"], "rows": dv.rows, "data_path": str(prefix),
            "tokenizer": str(tok_path), "eos_token": eos_token, "token_bytes": step.token_size, "stats": str(stats)[:200]}
