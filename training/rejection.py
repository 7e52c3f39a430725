"""Stage 3b recipe: rejection sampling fine-tuning.

1. prompts: ``n_prompts`` dialogues of the SFT version's ``split`` (sorted by id), each cut
   before its last assistant turn (the history stays as context);
2. sample ``samples_per_prompt`` responses per prompt from the policy: ``generator: inprocess``
   in this process (batched ``generate``, left padding, seeded), or through the generator
   (``cumed.generation``: ``local`` ``cumed serve``, a team's ``endpoint``, ``vllm``/``sglang`` on
   this GPU node; ``training/rs_generator.py``), which publishes the samples as a ``responses``
   version first;
3. score every response with the reward model;
4. keep the ``top_k`` best per prompt whose score is at least ``min_score``; ``select_top`` is
   the whole rule and is tested on its own;
5. publish the kept responses as a new ``conversations`` version (the rest go to ``removed``
   with their rank and score, so every sample is accounted for); its lineage names the prompts
   version and the sha256 of the policy and reward checkpoints, and through the generator also
   the responses version (a second parent) and the generator (kind, model, endpoint host, params);
6. fine-tune the policy on that version with the rs preset (AdamW betas 0.9/0.98, eps 1e-2 as
   printed, lr 5e-5, weight decay 0.2, batch 64, 400 iterations).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import torch

from cumed.ids import stable_id
from cumed.errors import CumedError
from cumed.hashing import sha256_text
from cumed.store import Store

from training.checkpoint_lineage import LINEAGE_FILE, checkpoint_sha256, write_lineage
from training.config import load_config
from training.data import load_version, split_table
from training.distributed import init_distributed
from training.reward_scoring import score
from training.rs_generator import check_generator, sample_via_generator
from training.seeds import set_seed
from training.sft import train_sft
from training.tokenizer import load_tokenizer

def select_top(candidates: list[dict], top_k: int, min_score: float | None = None) -> tuple[list[dict], list[dict]]:
    """Split scored candidates (``prompt_id``, ``sample``, ``score``) into kept and removed.

    Per prompt: best score first (ties: lower sample index first), the first ``top_k`` with
    ``score >= min_score`` are kept. Every candidate gets its ``rank`` (1 = best).
    """
    by_prompt: dict[str, list[dict]] = {}
    for c in candidates:
        by_prompt.setdefault(c["prompt_id"], []).append(c)
    kept, removed = [], []
    for pid in sorted(by_prompt):
        ranked = sorted(by_prompt[pid], key=lambda c: (-c["score"], c["sample"]))
        n_kept = 0
        for rank, c in enumerate(ranked, 1):
            c = {**c, "rank": rank}
            if n_kept < top_k and (min_score is None or c["score"] >= min_score):
                kept.append(c)
                n_kept += 1
            else:
                why = "below min_score" if min_score is not None and c["score"] < min_score else f"not in top {top_k}"
                removed.append({**c, "reason": f"{why}: rank {rank} of {len(ranked)}, score {c['score']:.4f}"})
    return kept, removed


def load_prompts(dv, split: str, n: int) -> list[dict]:
    rows = sorted(split_table(dv, split, ["id", "messages", "department"]).to_pylist(), key=lambda r: r["id"])
    prompts = []
    for r in rows:
        msgs = [{"role": m["role"], "content": m["content"]} for m in r["messages"]]
        last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
        ctx = msgs[:last] if last is not None else msgs
        if ctx and ctx[-1]["role"] == "user":
            prompts.append({"prompt_id": r["id"], "messages": ctx, "department": r["department"]})
        if len(prompts) == n:
            break
    if not prompts:
        raise CumedError(f"no prompts in {dv.ref} split {split!r}: rows need a user turn before an assistant turn")
    return prompts


@torch.no_grad()
def sample_responses(policy, tok, prompts: list[dict], n: int, cfg: dict) -> list[dict]:
    """``n`` sampled responses per prompt: ``{"prompt_id", "sample", "response"}``."""
    policy.eval()
    device = next(policy.parameters()).device
    side, tok.padding_side = tok.padding_side, "left"  # generation continues at the right edge
    out = []
    try:
        size = int(cfg.get("generate_batch_size") or 8)
        for i in range(0, len(prompts), size):
            part = prompts[i:i + size]
            texts = [tok.apply_chat_template(p["messages"], tokenize=False, add_generation_prompt=True) for p in part]
            enc = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt").to(device)
            gen = policy.generate(**enc, do_sample=True, num_return_sequences=n, max_new_tokens=int(cfg["max_new_tokens"]),
                                  temperature=float(cfg["temperature"]), top_p=float(cfg["top_p"]),
                                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            new = gen[:, enc["input_ids"].shape[1]:]
            for j, seq in enumerate(new):
                p = part[j // n]
                out.append({"prompt_id": p["prompt_id"], "sample": j % n,
                            "response": tok.decode(seq, skip_special_tokens=True).strip()})
    finally:
        tok.padding_side = side
    return out


def to_rows(prompts: dict, items: list[dict], removed: bool = False) -> pa.Table:
    rows = []
    for c in items:
        p = prompts[c["prompt_id"]]
        msgs = p["messages"] + [{"role": "assistant", "content": c["response"]}]
        row = {"id": stable_id("rs", c["prompt_id"], c["sample"]), "messages": msgs, "source": "rejection-sampling",
               "department": p["department"], "n_turns": len(msgs), "split": "train",
               "prompt_id": c["prompt_id"], "sample": c["sample"], "reward": float(c["score"]), "rank": c["rank"]}
        if removed:
            row.update({"removed_by": "rejection_sampling", "reason": c["reason"]})
        rows.append(row)
    return pa.Table.from_pylist(rows) if rows else None


def rs_version(st: Store, dv, prompts: list[dict], samples: list[dict], reward_dir: str | Path, tok, cfg: dict,
               lineage: dict, extra_stats: dict | None = None) -> dict:
    """Steps 3-5, whatever sampled: score ``samples`` (``prompt_id``, ``sample``, ``response``) of
    ``prompts`` with the reward model, keep the top-k, publish the RS ``conversations`` version."""
    from transformers import AutoModelForSequenceClassification

    rm = AutoModelForSequenceClassification.from_pretrained(str(reward_dir), num_labels=1)
    rm_tok = load_tokenizer(reward_dir) if (Path(reward_dir) / "tokenizer.json").is_file() else tok
    by_id = {p["prompt_id"]: p for p in prompts}
    for pid in by_id:
        mine = [s for s in samples if s["prompt_id"] == pid]
        if not mine:
            continue
        prompt_text = by_id[pid]["messages"][-1]["content"]
        for s, r in zip(mine, score(rm, rm_tok, prompt_text, [s["response"] for s in mine], int(cfg["block_size"]))):
            s["score"] = r
    kept, removed = select_top(samples, int(cfg["top_k"]), cfg.get("min_score"))
    if not kept:
        raise CumedError(f"rejection sampling kept nothing: every score is below min_score {cfg.get('min_score')}; "
                         f"lower it or set it to null")
    name = cfg.get("publish_name") or f"{dv.name}-rs"
    scores = [s["score"] for s in samples]
    stats = {"prompts": len(prompts), "samples": len(samples), "kept": len(kept), **(extra_stats or {}),
             "reward": {"min": min(scores), "max": max(scores), "mean": sum(scores) / len(scores),
                        "kept_mean": sum(c["score"] for c in kept) / len(kept)}}
    new = st.publish(name, to_rows(by_id, kept), kind="conversations", removed=to_rows(by_id, removed, removed=True),
                     stats=stats, lineage=lineage)
    # "prompts" is the prompts version's ref (stats' "prompts" is their count, in the manifest)
    return {"ref": new.ref, "candidates": samples, "kept_rows": kept, **stats, "prompts": dv.ref, "lineage": lineage}


def samples_from_responses(rv, dv) -> tuple[list[dict], list[dict]]:
    """(prompts, samples) of a responses version of ``dv``'s prompts, in the in-process sampler's shape."""
    if rv.kind != "responses":
        raise CumedError(f"{rv.ref} is {rv.kind}; rejection sampling reads a responses version")
    cols = dv.to_arrow(columns=["id", "department"]).to_pydict()
    department = dict(zip(cols["id"], cols["department"]))
    rows = sorted(rv.to_arrow(columns=["prompt_id", "prompt", "sample", "response"]).to_pylist(),
                  key=lambda r: (r["prompt_id"], r["sample"]))
    prompts, samples = {}, []
    for r in rows:
        prompts.setdefault(r["prompt_id"], {"prompt_id": r["prompt_id"], "department": department.get(r["prompt_id"]),
                                            "messages": [{"role": m["role"], "content": m["content"]}
                                                         for m in r["prompt"]]})
        samples.append({"prompt_id": r["prompt_id"], "sample": int(r["sample"]), "response": r["response"].strip()})
    return list(prompts.values()), samples


def _lineage(parents: list[str], policy_dir, reward_dir, cfg: dict) -> dict:
    return {
        "parents": parents,
        "config_hash": sha256_text(json.dumps(cfg, sort_keys=True, default=str)),
        "checkpoints": {"policy": {"path": str(policy_dir), "sha256": checkpoint_sha256(policy_dir)},
                        "reward": {"path": str(reward_dir), "sha256": checkpoint_sha256(reward_dir)}},
        "rejection_sampling": {k: cfg.get(k) for k in ("n_prompts", "samples_per_prompt", "top_k", "min_score",
                                                        "temperature", "top_p", "max_new_tokens", "seed")},
    }


def sample_and_publish(store: Store | str, ref: str, policy_dir: str | Path, reward_dir: str | Path, cfg: dict) -> dict:
    """Steps 1-5: returns the published version's ref, the counts and the candidates with scores.

    ``generator`` inprocess samples here with ``generate``; the others go through the generator
    (``training.rs_generator``), whose ``responses`` version becomes a parent of the RS version and
    is named, with the server and the sampling params, in its lineage under ``generator``.
    """
    from transformers import AutoModelForCausalLM

    st = store if isinstance(store, Store) else Store(store, create=False)
    gen = check_generator(cfg)
    dv = load_version(st, ref, "rs")
    tok = load_tokenizer(cfg.get("tokenizer") or policy_dir)
    if gen == "inprocess":
        prompts = load_prompts(dv, cfg["split"], int(cfg["n_prompts"]))
        policy = AutoModelForCausalLM.from_pretrained(str(policy_dir))
        set_seed(int(cfg["seed"]))
        samples = sample_responses(policy, tok, prompts, int(cfg["samples_per_prompt"]), cfg)
        del policy
        return rs_version(st, dv, prompts, samples, reward_dir, tok, cfg, _lineage([dv.ref], policy_dir, reward_dir, cfg))
    name = cfg.get("publish_name") or f"{dv.name}-rs"
    rv, report, generator = sample_via_generator(st, dv, policy_dir, cfg, f"{name}-responses")
    prompts, samples = samples_from_responses(rv, dv)
    lineage = {**_lineage([dv.ref, rv.ref], policy_dir, reward_dir, cfg), "generator": generator}
    pub = rs_version(st, dv, prompts, samples, reward_dir, tok, cfg, lineage,
                     extra_stats={"responses": rv.ref, "failures": len(report["failures"])})
    return {**pub, "generator": report}


def train_rs(store: Store | str, ref: str, policy: str | Path, reward: str | Path, config: str | Path | None = None,
             max_steps: int | None = None, runs_dir: str | Path | None = None, progress: bool = False,
             cache_dir=None, **overrides) -> dict:
    """Sample, score, keep the top-k, publish, then fine-tune the policy on the new version."""
    cfg = load_config("rs", config, **overrides)
    cfg["model"], cfg["reward_model"] = str(policy), str(reward)
    check_generator(cfg)
    if not (Path(policy) / "config.json").is_file() or not (Path(reward) / "config.json").is_file():
        raise CumedError(f"rs needs --policy and --reward checkpoint folders (runs/<stage>-*/final); got {policy}, {reward}")
    rank, world = init_distributed()
    pub = sample_and_publish(store, ref, policy, reward, cfg) if rank == 0 else None
    if world > 1:  # one publisher; every rank then trains on the same version
        box = [{k: v for k, v in pub.items() if k not in ("candidates", "kept_rows")} if rank == 0 else None]
        torch.distributed.broadcast_object_list(box, src=0)
        pub = box[0]
    caps = [x for x in (max_steps, cfg.get("max_steps")) if x]
    res = train_sft(store, pub["ref"], max_steps=min(caps) if caps else None, runs_dir=runs_dir or cfg["runs_dir"], progress=progress,
                    cache_dir=cache_dir, stage="rs",
                    extra_datasets={"prompts": pub["prompts"], "checkpoints": pub["lineage"]["checkpoints"]},
                    **{k: v for k, v in cfg.items() if k not in ("runs_dir", "max_steps")})
    if rank == 0:  # train_sft wrote an SFT lineage; the RS one also names the prompts, the policy and the reward model
        st = store if isinstance(store, Store) else Store(store, create=False)
        sft = json.loads((Path(res["final"]) / LINEAGE_FILE).read_text(encoding="utf-8"))
        datasets = {"train": st.get(pub["ref"]), "prompts": st.get(pub["prompts"])}
        extra = {"checkpoints": pub["lineage"]["checkpoints"]}
        if pub["lineage"].get("generator"):  # the policy's samples came through the generator
            datasets["responses"] = st.get(pub["lineage"]["generator"]["responses"])
            extra["generator"] = pub["lineage"]["generator"]
        write_lineage(res["final"], stage="rs", engine="cumed", datasets=datasets, parent=policy,
                      tokenizer=sft["tokenizer"], config=sft["config"], extra=extra)
    out = {**res, "published": pub["ref"], "prompts": pub["prompts"], "sampled": pub["samples"], "kept": pub["kept"],
           "reward": pub["reward"]}
    if pub.get("generator"):
        out["generator"] = pub["generator"]
    return out
