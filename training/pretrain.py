"""Stage 1 recipe: continued pretraining on a ``documents`` version, packed into fixed blocks.

Read top to bottom: config -> dataset -> tokenizer -> tokenise (cached) -> pack -> model -> fit.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from cumed.store import Store

from training.checkpoint_lineage import write_lineage
from training.data import cached_table, load_version, split_table
from training.distributed import init_distributed
from training.fit import fit
from training.lm_objective import lm_loss, micro_batches
from training.model import build_model
from training.packing import pack_documents
from training.run_folder import open_run
from training.tokenizer import resolve_tokenizer, tokenizer_hash


def tokenize_documents(dv, tok, cache_dir=None, max_documents: int | None = None) -> tuple[list[list[int]], dict]:
    def build() -> pa.Table:
        texts = split_table(dv, None, ["id", "text"])
        if max_documents:
            texts = texts.slice(0, int(max_documents))
        ids = tok(texts.column("text").to_pylist(), add_special_tokens=False)["input_ids"]
        return pa.table({"id": texts.column("id"), "input_ids": pa.array(ids, pa.list_(pa.int32()))})

    table, info = cached_table(dv, tokenizer_hash(tok), {"stage": "pretrain", "max_documents": max_documents, "v": 1}, build, cache_dir)
    return table.column("input_ids").to_pylist(), info


def train_pretrain(store: Store | str, ref: str, config: str | Path | None = None, max_steps: int | None = None,
                   runs_dir: str | Path | None = None, resume: str | Path | None = None, progress: bool = False,
                   cache_dir=None, **overrides) -> dict:
    # 1. config and run folder (init_distributed joins a torchrun group; no-op otherwise)
    init_distributed()
    dv = load_version(store, ref, "pretrain")
    run, cfg = open_run("pretrain", dv, config, max_steps, runs_dir, resume, **overrides)

    # 2. tokenizer: named, this run's own (resume), the model's, or trained on the documents
    tok = resolve_tokenizer(cfg, dv, run)

    # 3. tokenise (cached) and pack: documents + </s> end to end, cut every block_size tokens
    docs, cache = tokenize_documents(dv, tok, cache_dir, cfg.get("max_documents"))
    rows = pack_documents(docs, int(cfg["block_size"]), tok.eos_token_id, drop_last=False)
    batches = micro_batches(rows, int(cfg["micro_batch_size"]))

    # 4. model and loop
    model = build_model(cfg, tok)
    result = fit(run, model, batches, lm_loss, cfg, progress=progress)
    final = run.save_final(model, tok)
    if run.rank == 0:
        write_lineage(final, stage="pretrain", engine="cumed", datasets={"train": dv}, parent=cfg.get("model"), tokenizer=tok,
                      config=cfg)
    return {"stage": "pretrain", "dataset": dv.ref, "rows_packed": len(rows), "documents": len(docs),
            "cache": cache, "final": str(final), **result}
