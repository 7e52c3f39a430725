"""``demo_training``: every stage for a few steps on a tiny LLaMA, chained as the paper chains them.

pretrain (documents) -> SFT (conversations, from the pretrained weights) -> reward model (from the
SFT weights) -> rejection sampling (SFT policy + reward model -> new conversations version -> SFT).
One byte-level BPE, trained on the SFT dialogues, serves every stage (the stages hand weights to
each other, so they must share the vocabulary). Minutes on a laptop CPU; it checks the plumbing,
not the model.
"""

from __future__ import annotations

from pathlib import Path

from cumed.store import Store

from training.data import load_version
from training.seeds import set_seed


def _quiet() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def demo_training(store: Store | str, pretrain_ref: str, sft_ref: str, pref_ref: str | None = None, steps: int = 5,
                  runs_dir: str | Path = "runs", vocab_size: int = 1000, max_documents: int = 2000,
                  progress: bool = False) -> dict:
    from training.pretrain import train_pretrain
    from training.rejection import train_rs
    from training.reward import train_rm
    from training.sft import encode_conversation, train_sft
    from training.tokenizer import load_tokenizer, train_tokenizer_from_version

    _quiet()
    set_seed(0)
    st = store if isinstance(store, Store) else Store(store, create=False)
    sft_dv = load_version(st, sft_ref, "sft")
    tok_dir = Path(runs_dir) / f"demo-tokenizer-{sft_dv.name}-v{sft_dv.version}"
    if not (tok_dir / "tokenizer.json").is_file():
        train_tokenizer_from_version(sft_dv, vocab_size, tok_dir)
    tok = load_tokenizer(tok_dir)
    # block wide enough for the longest dialogue: the demo shows packing, not truncation errors
    longest = max(len(encode_conversation(tok, r["messages"], 1 << 30)["input_ids"])
                  for r in sft_dv.to_arrow(columns=["messages"]).to_pylist())
    block = max(256, -(-longest // 64) * 64)
    common = {"runs_dir": str(runs_dir), "progress": progress, "max_steps": steps, "block_size": block,
              "micro_batch_size": 2, "batch_size": 4}
    out = {"tokenizer": str(tok_dir), "block_size": block}
    pre = train_pretrain(st, pretrain_ref, tokenizer=str(tok_dir), max_documents=max_documents, **common)
    out["pretrain"] = _summary(pre)
    sft = train_sft(st, sft_ref, model=pre["final"], **common)
    out["sft"] = _summary(sft)
    if pref_ref is None:
        out["rm"] = out["rs"] = {"skipped": "no preferences version given (pref_ref=None)"}
        return out
    rm = train_rm(st, pref_ref, model=sft["final"], **{**common, "micro_batch_size": 4, "batch_size": 8})
    out["rm"] = _summary(rm)
    rs = train_rs(st, sft_ref, sft["final"], rm["final"], n_prompts=8, samples_per_prompt=4, max_new_tokens=32,
                  **{**common, "batch_size": 4})
    out["rs"] = {**_summary(rs), "published": rs["published"], "kept": rs["kept"], "sampled": rs["sampled"]}
    return out


def _summary(res: dict) -> dict:
    ms = [m for m in _metrics(res["run"]) if "loss" in m]
    return {"run": res["run"], "dataset": res["dataset"], "steps": res["steps"], "final": res["final"],
            "first_loss": ms[0]["loss"] if ms else None, "last_loss": ms[-1]["loss"] if ms else None,
            **({"eval": res["eval"]} if "eval" in res else {})}


def _metrics(run_dir: str) -> list[dict]:
    from training.run_folder import Run

    return Run(run_dir).metrics()
