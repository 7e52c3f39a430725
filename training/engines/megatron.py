"""``cumed train pretrain --engine megatron``: a Megatron-LM pretraining run prepared from a version.

The paper pretrained with Megatron-LM. cumed does not run it (it needs a Megatron-LM checkout and
GPUs); it prepares the run from the version and the pretrain preset and checks the data as far
as megatron-core goes on one CPU. The folder ``runs/pretrain-megatron-<time>/``::

    data/<name>-v<N>_00000_tokens.{bin,idx}   the version exported (``megatron`` format)
    tokenizer/           only when none was given: a byte-level BPE trained on the version
    megatron_args.json   pretrain_gpt.py's arguments, the preset in Megatron-LM's names
    megatron_pretrain.sh torchrun ... $MEGATRON_LM/pretrain_gpt.py <those arguments>
    megatron_cache/      the index files megatron-core's GPTDataset built during the check
    lineage.json         engine megatron, the version's content hash; prepared, not trained

The check builds megatron-core's ``GPTDataset`` over the export with the tokenizer Megatron-LM
builds from ``--tokenizer-type HuggingFaceTokenizer --tokenizer-model`` (through
``BlendedMegatronDatasetBuilder``, as ``pretrain_gpt.py`` does) and reads samples back: the
data path, sequence length, split and tokenizer of the command line are the ones checked.
"""

from __future__ import annotations

import json
import math
import shlex
import warnings
from datetime import datetime, timezone
from pathlib import Path

from cumed import atomic
from cumed.errors import CumedError
from cumed.exports import export
from cumed.store import Store

import training.exports  # noqa: F401 - registers the megatron format
from training.checkpoint_lineage import write_lineage
from training.config import cap_steps, load_config
from training.data import load_version
from training.schedule import warmup_steps

SPLIT = "100,0,0"  # documents have no split column: cumed's pretrain trains on every row, so does this run
CHECK_SAMPLES = 8


def _token_counts(data_path: str) -> tuple[int, int]:
    """(tokens, documents) of an indexed dataset. The reader stays referenced while its arrays are
    read: they view its mmap, which it closes when collected (reading them after is a segfault)."""
    *_, IndexedDataset, _ = _megatron_core()
    ds = IndexedDataset(data_path)
    counts = int(ds.sequence_lengths.sum()), len(ds.document_indices) - 1
    del ds
    return counts


def _megatron_core():
    try:
        with warnings.catch_warnings():  # "Transformer Engine and Apex are not installed": true, and fine for data
            warnings.simplefilter("ignore")
            from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
            from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
            from megatron.core.datasets.indexed_dataset import IndexedDataset
            from megatron.core.tokenizers import MegatronTokenizer
    except ImportError as e:
        raise CumedError(f"checking a Megatron run needs megatron-core ({e.name} is missing): pip install "
                         f"'cumed[training]'") from e
    return BlendedMegatronDatasetBuilder, GPTDataset, GPTDatasetConfig, IndexedDataset, MegatronTokenizer


def _tokenizer_dir(cfg: dict, dv, out: Path, tokenizer) -> Path:
    """``tokenizer``, else the preset's, else the model folder's, else one trained on the version."""
    from training.tokenizer import train_tokenizer_from_version

    for cand in (tokenizer, cfg.get("tokenizer")):
        if cand:
            if not (Path(cand) / "tokenizer.json").is_file():
                raise CumedError(f"tokenizer folder {cand} has no tokenizer.json; Megatron-LM's HuggingFaceTokenizer and "
                                 f"the export both need one (cumed train tokenizer writes it)")
            return Path(cand).resolve()
    if cfg.get("model") and (Path(cfg["model"]) / "tokenizer.json").is_file():
        return Path(cfg["model"]).resolve()
    train_tokenizer_from_version(dv, int(cfg["tokenizer_vocab_size"]), out / "tokenizer")
    return (out / "tokenizer").resolve()


def _shape(cfg: dict) -> dict:
    """Model shape: the model folder's config.json, else the preset's tiny LLaMA."""
    if cfg.get("model"):
        path = Path(cfg["model"]) / "config.json"
        if not path.is_file():
            raise CumedError(f"model folder {cfg['model']} has no config.json; give a Hugging Face checkpoint folder "
                             f"or model: null")
        c = json.loads(path.read_text(encoding="utf-8"))
        return {"layers": c["num_hidden_layers"], "hidden": c["hidden_size"], "heads": c["num_attention_heads"],
                "kv_heads": c.get("num_key_value_heads") or c["num_attention_heads"], "ffn": c["intermediate_size"],
                "eps": c.get("rms_norm_eps", 1e-5), "rope": c.get("rope_theta", 10000.0),
                "max_pos": c.get("max_position_embeddings", cfg["block_size"]), "tied": c.get("tie_word_embeddings", False)}
    return {"layers": cfg["tiny_layers"], "hidden": cfg["tiny_hidden_size"], "heads": cfg["tiny_heads"],
            "kv_heads": cfg["tiny_kv_heads"], "ffn": cfg["tiny_intermediate_size"], "eps": 1e-6, "rope": 10000.0,
            "max_pos": max(int(cfg["block_size"]), 4096), "tied": False}  # transformers' LlamaConfig defaults


def megatron_args(cfg: dict, data_path: str, tokenizer_dir: Path, out: Path, train_iters: int) -> dict:
    """``pretrain_gpt.py``'s arguments from the pretrain preset (flag -> value; True: a bare flag)."""
    s, lr = _shape(cfg), float(cfg["lr"])
    schedule = cfg.get("schedule") or "constant"
    if schedule not in ("constant", "linear", "cosine"):
        raise CumedError(f"unknown schedule {schedule!r}; use constant, linear or cosine")
    args = {
        # data: the export, every document in training
        "data-path": data_path, "split": SPLIT, "data-cache-path": str(out / "megatron_cache"),
        "tokenizer-type": "HuggingFaceTokenizer", "tokenizer-model": str(tokenizer_dir),
        "seq-length": int(cfg["block_size"]), "max-position-embeddings": int(max(s["max_pos"], cfg["block_size"])),
        # cumed packs documents with </s> and restarts positions and attention per document
        "reset-position-ids": True, "reset-attention-mask": True,
        # model: LLaMA
        "num-layers": s["layers"], "hidden-size": s["hidden"], "num-attention-heads": s["heads"],
        "ffn-hidden-size": s["ffn"], "swiglu": True, "normalization": "RMSNorm", "norm-epsilon": s["eps"],
        "position-embedding-type": "rope", "rotary-base": int(s["rope"]), "disable-bias-linear": True,
        **({"group-query-attention": True, "num-query-groups": s["kv_heads"]} if s["kv_heads"] != s["heads"] else {}),
        **({} if s["tied"] else {"untie-embeddings-and-output-weights": True}),
        "attention-dropout": float(cfg.get("dropout") or 0.0), "hidden-dropout": float(cfg.get("dropout") or 0.0),
        # optimisation
        "micro-batch-size": int(cfg["micro_batch_size"]), "global-batch-size": int(cfg["batch_size"]),
        "train-iters": train_iters, "lr": lr, "min-lr": lr * float(cfg.get("min_lr_ratio") or 0.0),
        "lr-decay-style": schedule, "lr-decay-iters": train_iters, "lr-warmup-iters": warmup_steps(cfg, train_iters),
        "weight-decay": float(cfg.get("weight_decay") or 0.0), "adam-beta1": float(cfg["betas"][0]),
        "adam-beta2": float(cfg["betas"][1]), "adam-eps": float(cfg["eps"]), "clip-grad": float(cfg["max_grad_norm"]),
        **({"bf16": True} if cfg.get("precision") == "bf16" else {"fp16": True} if cfg.get("precision") == "fp16" else {}),
        "seed": int(cfg["seed"]),
        # parallelism
        "tensor-model-parallel-size": int(cfg.get("tensor_parallel_size") or 1),
        "pipeline-model-parallel-size": int(cfg.get("pipeline_parallel_size") or 1),
        # FSDP2: Megatron-LM refuses it with gradient-accumulation fusion (and with fp16)
        **({"use-torch-fsdp2": True, "no-gradient-accumulation-fusion": True}
           if cfg.get("parallelism") == "fsdp" else {}),
        **({"recompute-granularity": "full", "recompute-method": "uniform", "recompute-num-layers": 1}
           if cfg.get("activation_checkpointing") else {}),
        # bookkeeping
        "save": str(out / "checkpoints"), "save-interval": int(cfg.get("checkpoint_every") or train_iters),
        "log-interval": int(cfg.get("log_every") or 1), "eval-iters": 0,
    }
    if cfg.get("model"):  # Megatron-LM loads its own checkpoint format: convert the HF folder first (see the .sh)
        args.update({"load": str(out / "base-megatron"), "finetune": True, "no-load-optim": True, "no-load-rng": True})
    return args


def command_line(args: dict) -> list[str]:
    cmd = []
    for flag, value in args.items():
        if value is False or value is None:
            continue
        cmd += [f"--{flag}"] if value is True else [f"--{flag}", str(value)]
    return cmd


def write_script(path: Path, args: dict, dv, cfg: dict) -> None:
    lines = ["#!/usr/bin/env bash",
             f"# Megatron-LM pretraining prepared by cumed from {dv.ref} (content hash {dv.content_hash}).",
             "# cumed did not run it. Run:  MEGATRON_LM=/path/to/Megatron-LM GPUS_PER_NODE=8 bash megatron_pretrain.sh",
             "# (extra pretrain_gpt.py arguments after the script name are appended and win)."]
    if cfg.get("model"):
        lines += [f"# Starts from {cfg['model']} (Hugging Face format): convert it into {args['load']} first, e.g. "
                  f"(Megatron-LM docs/llama_mistral.md; add --model-size for your model):",
                  f"#   python $MEGATRON_LM/tools/checkpoint/convert.py --model-type GPT --loader llama_mistral "
                  f"--saver core --checkpoint-type hf --load-dir {cfg['model']} --save-dir {args['load']} "
                  f"--tokenizer-model {args['tokenizer-model']} --target-tensor-parallel-size "
                  f"{args['tensor-model-parallel-size']} --target-pipeline-parallel-size {args['pipeline-model-parallel-size']}"]
    lines += ["set -euo pipefail",
              ': "${MEGATRON_LM:?set MEGATRON_LM to a Megatron-LM checkout (the folder with pretrain_gpt.py)}"',
              'torchrun --nproc_per_node "${GPUS_PER_NODE:-1}" --nnodes "${NNODES:-1}" --node_rank "${NODE_RANK:-0}" \\',
              '  --master_addr "${MASTER_ADDR:-localhost}" --master_port "${MASTER_PORT:-6000}" \\',
              '  "$MEGATRON_LM/pretrain_gpt.py" \\']
    cmd = command_line(args)
    i = 0
    while i < len(cmd):  # one flag (and its value) a line
        n = 2 if i + 1 < len(cmd) and not cmd[i + 1].startswith("--") else 1
        lines.append("  " + " ".join(shlex.quote(c) for c in cmd[i:i + n]) + " \\")
        i += n
    lines.append('  "$@"')
    atomic.write_text(path, "\n".join(lines) + "\n")
    path.chmod(0o755)


def megatron_tokenizer(tokenizer_dir: str | Path):
    """The tokenizer ``pretrain_gpt.py`` builds for ``--tokenizer-type HuggingFaceTokenizer --tokenizer-model DIR``."""
    *_, MegatronTokenizer = _megatron_core()
    return MegatronTokenizer.from_pretrained(tokenizer_path=str(tokenizer_dir), metadata_path={"library": "huggingface"})


def gpt_dataset(data_path: str, tokenizer_dir: str | Path, seq_length: int, seed: int, cache: str | Path,
                split: str = SPLIT, reset: bool = True):
    """megatron-core's training ``GPTDataset`` over ``data_path``, one epoch, built as pretrain_gpt.py builds it."""
    Builder, GPTDataset, GPTDatasetConfig, _, _ = _megatron_core()
    from megatron.core.datasets.blended_megatron_dataset_config import (convert_split_vector_to_split_matrix,
                                                                        parse_and_normalize_split)

    _, docs = _token_counts(data_path)
    for name, part in zip(("train", "validation", "test"),
                          convert_split_vector_to_split_matrix(parse_and_normalize_split(split))):
        # a split with a weight but no document makes megatron-core's index builder loop forever
        if part is not None and round(part[1] * docs) - round(part[0] * docs) == 0:
            raise CumedError(f"--split {split} gives the {name} split none of the {docs} documents of {data_path}; "
                             f"megatron-core would hang building it: give it weight 0 (e.g. {SPLIT}) or more documents")
    config = GPTDatasetConfig(random_seed=seed, sequence_length=seq_length, blend=([data_path], None), split=split,
                              tokenizer=megatron_tokenizer(tokenizer_dir), reset_position_ids=reset,
                              reset_attention_mask=reset, eod_mask_loss=False, path_to_cache=str(cache))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train, _, _ = Builder(GPTDataset, [None, None, None], lambda: True, config).build()
    return train


def check_with_megatron_core(args: dict, eos_id: int, samples: int = CHECK_SAMPLES) -> dict:
    """Build the run's GPTDataset and read samples: full length, labels the tokens shifted by one,
    ids inside the vocabulary, the tokenizer's end-of-document id the export's ``</s>``."""
    seq = int(args["seq-length"])
    tokens, _ = _token_counts(args["data-path"])
    if tokens <= seq:
        raise CumedError(f"the export has {tokens} tokens, not enough for one sample of --seq-length {seq}; "
                         f"lower block_size or use a larger version")
    ds = gpt_dataset(args["data-path"], args["tokenizer-model"], seq, int(args["seed"]), args["data-cache-path"],
                     args["split"], bool(args.get("reset-position-ids")))
    tok = ds.config.tokenizer
    if tok.eod != eos_id:
        raise CumedError(f"Megatron's tokenizer ends documents with id {tok.eod}, the export with {eos_id}: "
                         f"export and train with the same tokenizer folder")
    for i in range(min(samples, len(ds))):
        s = ds[i]
        ids = s["tokens"].tolist()
        if len(ids) != seq or ids[1:] != s["labels"].tolist()[:-1] or max(ids) >= tok.vocab_size:
            raise CumedError(f"megatron-core sample {i} of {args['data-path']} is malformed (length {len(ids)}, "
                             f"seq {seq}, vocab {tok.vocab_size}); re-export the version with this tokenizer")
    return {"dataset": "megatron.core.datasets.gpt_dataset.GPTDataset", "samples_per_epoch": len(ds),
            "samples_read": min(samples, len(ds)), "tokens": tokens, "documents": len(ds.dataset.document_indices) - 1,
            "vocab_size": tok.vocab_size, "eod": tok.eod, "cache": args["data-cache-path"]}


def prepare_megatron_pretrain(store: Store | str, ref: str, config: str | Path | None = None,
                              out: str | Path | None = None, tokenizer: str | Path | None = None, *,
                              max_steps: int | None = None, runs_dir: str | Path | None = None,
                              megatron_overrides: dict | None = None, check: bool = True, **overrides) -> dict:
    """Export ``ref`` as .bin/.idx, write Megatron-LM's arguments and script from the pretrain preset
    (``megatron_overrides``: flag -> value, last; False drops a flag), check them with megatron-core
    and write ``lineage.json``. ``out`` defaults to ``runs/pretrain-megatron-<time>``."""
    dv = load_version(store, ref, "pretrain")
    cfg = cap_steps(load_config("pretrain", config, **overrides), max_steps)
    if out is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
        out = Path(runs_dir or cfg["runs_dir"]) / f"pretrain-megatron-{stamp}"
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    tok_dir = _tokenizer_dir(cfg, dv, out, tokenizer)
    exported = export(dv, "megatron", out / "data", tokenizer=tok_dir)

    tokens, _ = _token_counts(exported["data_path"])
    seq, batch = int(cfg["block_size"]), int(cfg["batch_size"])
    steps = cfg.get("max_steps_cap") or cfg.get("max_steps")
    train_iters = int(steps) if steps else max(1, math.ceil(float(cfg["epochs"]) * ((tokens - 1) // seq) / batch))
    extra = {**(cfg.get("megatron") or {}), **(megatron_overrides or {})}
    args = {**megatron_args(cfg, exported["data_path"], tok_dir, out, train_iters),
            **{k.lstrip("-"): v for k, v in extra.items()}}
    atomic.write_json(out / "megatron_args.json", args, indent=2)
    write_script(out / "megatron_pretrain.sh", args, dv, cfg)

    from transformers import AutoTokenizer

    eos_id = AutoTokenizer.from_pretrained(str(tok_dir)).convert_tokens_to_ids(exported["eos_token"])
    checked = check_with_megatron_core(args, eos_id) if check else None
    write_lineage(out, stage="pretrain", engine="megatron", datasets={"train": dv}, parent=cfg.get("model"),
                  tokenizer=str(tok_dir), config=args,
                  extra={"prepared_only": True, "cumed_config": cfg, "megatron_core_check": checked,
                         "note": "cumed exported the data and wrote this Megatron-LM run, it did not train; "
                                 "the checkpoints Megatron-LM writes to --save are not hashed here"})
    return {"stage": "pretrain", "engine": "megatron", "dataset": dv.ref, "content_hash": dv.content_hash,
            "run": str(out), "data_path": exported["data_path"], "tokens": tokens, "train_iters": train_iters,
            "tokenizer": str(tok_dir), "script": str(out / "megatron_pretrain.sh"),
            "args": str(out / "megatron_args.json"), "command": ["pretrain_gpt.py", *command_line(args)],
            "check": checked, "lineage": str(out / "lineage.json")}
