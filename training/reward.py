"""Stage 3a recipe: a reward model trained on (chosen, rejected) pairs of a ``preferences`` version.

The model is the SFT model with a scalar head (``LlamaForSequenceClassification``, one label),
read at the last non-pad token of "prompt as the user turn + response as the assistant turn"
rendered with the chat template. Loss per pair: ``-log sigmoid(r_chosen - r_rejected - m)`` with
``m`` the row's ``margin`` when ``use_margin: true`` (adjacent ranks give margin 1, further ones
more) and 0 otherwise. Accuracy (r_chosen > r_rejected) is reported on the validation and test
splits, as in the paper's 4,500 / 250 / 250 split.

Preset (``training/configs/rm.yaml``): cosine from 5e-6 to 10 %, 2 epochs, batch 8, warm-up 3 %
of the steps and at least 5.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import torch
import torch.nn.functional as F

from cumed.errors import CumedError
from cumed.store import Store

from training.checkpoint_lineage import write_lineage
from training.data import cached_table, load_version, split_table
from training.distributed import init_distributed
from training.fit import fit
from training.model import build_model
from training.reward_scoring import encode_pair_side
from training.run_folder import open_run
from training.tokenizer import resolve_tokenizer, tokenizer_hash


def tokenize_pairs(dv, tok, split: str, block_size: int, cache_dir=None) -> tuple[list[dict], dict]:
    if not getattr(tok, "chat_template", None):
        raise CumedError("tokenizer has no chat template; the reward model renders (prompt, response) with it: "
                         "train one with 'cumed train tokenizer'")

    def build() -> pa.Table:
        t = split_table(dv, split, ["prompt_id", "prompt", "chosen", "rejected", "margin"])
        rows = t.to_pylist()
        return pa.table({
            "prompt_id": t.column("prompt_id"),
            "chosen": pa.array([encode_pair_side(tok, r["prompt"], r["chosen"], block_size) for r in rows], pa.list_(pa.int32())),
            "rejected": pa.array([encode_pair_side(tok, r["prompt"], r["rejected"], block_size) for r in rows], pa.list_(pa.int32())),
            "margin": pa.array([float(r["margin"] or 0.0) for r in rows], pa.float64()),
        })

    table, info = cached_table(dv, tokenizer_hash(tok), {"stage": "rm", "split": split, "block_size": block_size, "v": 1},
                               build, cache_dir)
    return table.to_pylist(), info


def pair_batches(pairs: list[dict], size: int, pad_id: int, use_margin: bool) -> list[dict]:
    """Chosen rows then rejected rows, right-padded together: one forward pass scores both."""
    out = []
    for i in range(0, len(pairs), size):
        part = pairs[i:i + size]
        seqs = [p["chosen"] for p in part] + [p["rejected"] for p in part]
        L = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), L), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = torch.tensor(s)
            mask[r, :len(s)] = 1
        margin = torch.tensor([p["margin"] if use_margin else 0.0 for p in part], dtype=torch.float32)
        out.append({"input_ids": ids, "attention_mask": mask, "margin": margin, "n_items": len(part)})
    return out


def rewards(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    r = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits.squeeze(-1).float()
    n = r.shape[0] // 2
    return r[:n], r[n:]


def pairwise_loss(model, batch) -> tuple[torch.Tensor, dict]:
    rc, rr = rewards(model, batch)
    loss = -F.logsigmoid(rc - rr - batch["margin"]).sum()
    return loss, {"correct": float((rc > rr).sum())}


@torch.no_grad()
def accuracy(model, batches: list[dict]) -> dict:
    model.eval()
    correct, n, gap = 0, 0, 0.0
    for b in batches:
        rc, rr = rewards(model, b)
        correct += int((rc > rr).sum())
        gap += float((rc - rr).sum())
        n += len(rc)
    return {"accuracy": correct / max(n, 1), "pairs": n, "mean_gap": gap / max(n, 1)}


def train_rm(store: Store | str, ref: str, config: str | Path | None = None, max_steps: int | None = None,
             runs_dir: str | Path | None = None, resume: str | Path | None = None, progress: bool = False,
             cache_dir=None, **overrides) -> dict:
    # 1. config, dataset and run folder (init_distributed joins a torchrun group; no-op otherwise)
    init_distributed()
    dv = load_version(store, ref, "rm")
    run, cfg = open_run("rm", dv, config, max_steps, runs_dir, resume, **overrides)

    # 2. tokenizer: named, this run's own (resume), the model's (the SFT checkpoint), or trained here
    tok = resolve_tokenizer(cfg, dv, run)

    # 3. pairs -> padded [chosen; rejected] micro-batches; every eval split must exist
    block, use_margin = int(cfg["block_size"]), bool(cfg.get("use_margin"))
    pairs, cache = tokenize_pairs(dv, tok, cfg["split"], block, cache_dir)
    batches = pair_batches(pairs, int(cfg["micro_batch_size"]), tok.pad_token_id, use_margin)
    evals = {s: pair_batches(tokenize_pairs(dv, tok, s, block, cache_dir)[0], int(cfg["micro_batch_size"]),
                             tok.pad_token_id, use_margin) for s in (cfg.get("eval_splits") or [])}

    def evaluate(m) -> dict:
        res = {}
        for s, b in evals.items():
            res.update({f"{s}_{k}": v for k, v in accuracy(m, b).items()})
        return res

    # 4. model and loop
    model = build_model(cfg, tok, head="reward")
    result = fit(run, model, batches, pairwise_loss, cfg, evaluate=evaluate, progress=progress)
    result["eval"]["train_accuracy"] = accuracy(model, batches)["accuracy"]
    final = run.save_final(model, tok)
    if run.rank == 0:
        write_lineage(final, stage="rm", engine="cumed", datasets={"train": dv}, parent=cfg.get("model"), tokenizer=tok,
                      config=cfg)
    return {"stage": "rm", "dataset": dv.ref, "pairs": len(pairs), "cache": cache, "final": str(final), **result}
