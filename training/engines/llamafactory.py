"""``cumed train sft|rm --engine llamafactory``: LLaMA-Factory's trainer on a cumed version.

The paper fine-tuned with LLaMA-Factory; teams that already use it keep it, and cumed still
decides the data (an exported version), the hyperparameters (the stage preset, mapped here to
LLaMA-Factory's names) and the lineage. The run folder ``runs/<stage>-llamafactory-<time>/``::

    config.yaml          cumed's merged config (preset + --config + overrides)
    datasets.json        the version trained on (ref, kind, content hash)
    data/                the version exported (llamafactory / llamafactory-rm) + dataset_info.json
    base-model/          only with model: null: the tiny LLaMA + tokenizer built here (LLaMA-Factory
                         loads a model folder and reads the tokenizer from it)
    llamafactory.yaml    what ``llamafactory-cli train`` read
    llamafactory.log     everything it printed
    final/               its output_dir: weights, trainer_state.json, checkpoint-N/, lineage.json

LLaMA-Factory pins its own torch/transformers, so it runs as a subprocess from its own venv
(``make llamafactory``; ``$CUMED_LF_VENV`` overrides the path), offline: model, tokenizer and
data are local folders. ``template`` stays unset, so it parses the tokenizer's chat template
(cumed's tokenizers carry one); a base model without one needs ``--llamafactory-arg template=...``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

import yaml

from cumed import atomic
from cumed.errors import CumedError
from cumed.exports import export
from cumed.store import Store

import training.exports  # noqa: F401 - registers the llamafactory / llamafactory-rm formats
from training.checkpoint_lineage import write_lineage
from training.config import cap_steps, load_config
from training.data import load_version
from training.schedule import warmup_steps

REPO = Path(__file__).resolve().parents[2]
LF_VENV_ENV = "CUMED_LF_VENV"
LF_VERSION = "0.9.5"  # the Makefile's; what the tests run
EXPORT_FORMAT = {"sft": "llamafactory", "rm": "llamafactory-rm"}
ATTENTION = {"sdpa": "sdpa", "eager": "disabled", "flash_attention_2": "fa2"}


def lf_venv() -> Path:
    return Path(os.environ.get(LF_VENV_ENV) or REPO / ".venv-llamafactory")


def lf_cli(venv: Path | None = None) -> Path:
    venv = venv or lf_venv()
    cli = venv / "bin" / "llamafactory-cli"
    if not cli.is_file():
        raise CumedError(f"LLaMA-Factory not found in {venv} (no bin/llamafactory-cli): run `make llamafactory` "
                         f"(installs llamafactory=={LF_VERSION} into .venv-llamafactory, its own venv) or set "
                         f"${LF_VENV_ENV} to a venv that has it")
    return cli


def lf_versions(venv: Path) -> dict:
    """What trained the weights: LLaMA-Factory and the torch/transformers its venv pins (not ours)."""
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps({p: m.version(p) for p in ('llamafactory', 'torch', 'transformers')}))")
    p = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, env=_env(cpu=False))
    return json.loads(p.stdout) if p.returncode == 0 else {}


def _world() -> int:
    """Processes llamafactory-cli will start: its own rule (NNODES x NPROC_PER_NODE, else every GPU)."""
    if os.environ.get("NPROC_PER_NODE"):
        return int(os.environ.get("NNODES") or 1) * int(os.environ["NPROC_PER_NODE"])
    import torch

    return max(1, torch.cuda.device_count()) * int(os.environ.get("NNODES") or 1)


def _scheduler(cfg: dict, max_steps: int | None) -> dict:
    schedule, floor = cfg.get("schedule") or "constant", float(cfg.get("min_lr_ratio") or 0.0)
    out = {"warmup_ratio": float(cfg.get("warmup_ratio") or 0.0)}
    if cfg.get("warmup_min_steps") and max_steps:  # "at least N steps" needs the total; without it the ratio stands
        out["warmup_steps"] = warmup_steps(cfg, max_steps)
    warm = bool(out.get("warmup_steps") or out["warmup_ratio"])
    if schedule == "cosine":
        if floor:
            return {**out, "lr_scheduler_type": "cosine_with_min_lr", "lr_scheduler_kwargs": {"min_lr_rate": floor}}
        return {**out, "lr_scheduler_type": "cosine"}
    if floor:
        raise CumedError(f"schedule {schedule} with min_lr_ratio {floor} has no LLaMA-Factory equivalent; use schedule: "
                         f"cosine, min_lr_ratio: 0, or --engine cumed")
    if schedule == "linear":
        return {**out, "lr_scheduler_type": "linear"}
    return {**out, "lr_scheduler_type": "constant_with_warmup" if warm else "constant"}


def lf_config(cfg: dict, stage: str, model_dir: Path, data_dir: Path, entries: list[str], output_dir: Path,
              cpu: bool, world: int = 1) -> dict:
    """The stage preset in LLaMA-Factory's names (its YAML for ``llamafactory-cli train``)."""
    name = lambda split: next((e for e in entries if e.endswith(f"_{split}")), None)  # noqa: E731
    train = name(cfg["split"])
    if train is None:
        raise CumedError(f"split {cfg['split']!r} is not in the export ({', '.join(entries)}); set split: to one of them")
    micro, batch = int(cfg["micro_batch_size"]), int(cfg["batch_size"])
    if batch % (micro * world):
        raise CumedError(f"batch_size {batch} is not a multiple of micro_batch_size {micro} x {world} process(es); "
                         f"LLaMA-Factory needs whole gradient-accumulation steps")
    if stage == "rm" and cfg.get("use_margin"):
        raise CumedError("use_margin: true has no LLaMA-Factory equivalent (its pairwise loss has no margin); "
                         "set use_margin: false or use --engine cumed")
    max_steps = cfg.get("max_steps_cap") or cfg.get("max_steps")
    precision = cfg.get("precision")
    lf = {
        "model_name_or_path": str(model_dir), "stage": stage, "do_train": True, "finetuning_type": "full",
        "dataset": train, "dataset_dir": str(data_dir), "cutoff_len": int(cfg["block_size"]), "overwrite_cache": True,
        "output_dir": str(output_dir), "overwrite_output_dir": True,
        "per_device_train_batch_size": micro, "gradient_accumulation_steps": batch // (micro * world),
        "learning_rate": float(cfg["lr"]), "weight_decay": float(cfg.get("weight_decay") or 0.0),
        "adam_beta1": float(cfg["betas"][0]), "adam_beta2": float(cfg["betas"][1]), "adam_epsilon": float(cfg["eps"]),
        "num_train_epochs": float(cfg["epochs"]), **({"max_steps": int(max_steps)} if max_steps else {}),
        **_scheduler(cfg, max_steps), "max_grad_norm": float(cfg["max_grad_norm"]),
        "bf16": precision == "bf16" and not cpu, "fp16": precision == "fp16" and not cpu,
        "seed": int(cfg["seed"]), "logging_steps": int(cfg.get("log_every") or 1),
        "disable_gradient_checkpointing": not cfg.get("activation_checkpointing"),
        "flash_attn": ATTENTION.get(cfg.get("attn_implementation") or "sdpa", "auto"), "report_to": "none",
    }
    if cpu:
        lf["use_cpu"] = True
    if cfg.get("checkpoint_every"):
        lf.update(save_strategy="steps", save_steps=int(cfg["checkpoint_every"]),
                  save_total_limit=int(cfg.get("keep_checkpoints") or 2))
    else:
        lf["save_strategy"] = "no"
    if stage == "sft" and cfg.get("packing"):
        lf.update(packing=True, neat_packing=True)  # per-dialogue attention inside a packed row, as cumed packs
    evals = [e for e in (name(s) for s in (cfg.get("eval_splits") or [cfg.get("eval_split")]) if s) if e]
    if evals:
        lf.update(eval_dataset=",".join(evals), do_eval=True, per_device_eval_batch_size=micro)
        if len(evals) > 1:
            lf["eval_on_each_dataset"] = True  # one accuracy per split, as cumed reports them
        if cfg.get("eval_every"):
            lf.update(eval_strategy="steps", eval_steps=int(cfg["eval_every"]))
    if cfg.get("parallelism") == "fsdp":
        lf["fsdp"] = "full_shard auto_wrap" + (" offload" if cfg.get("cpu_offload") else "")
    lf.update(cfg.get("llamafactory") or {})  # a config's own LLaMA-Factory keys (deepspeed: ..., fsdp_config: ...)
    return lf


def _env(cpu: bool) -> dict:
    """Its venv's Python alone (nothing of ours on the path), offline: everything it reads is local."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("DISABLE_VERSION_CHECK", "1")  # its venv is pinned by its own install
    if cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def run_llamafactory(yaml_path: Path, log_path: Path, cpu: bool, progress: bool, venv: Path | None = None) -> list[str]:
    """``llamafactory-cli train yaml_path``; its output to ``log_path`` (and stderr when ``progress``)."""
    cmd = [str(lf_cli(venv)), "train", str(yaml_path)]
    tail: deque[str] = deque(maxlen=25)
    with open(log_path, "w", encoding="utf-8") as log, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(cpu), cwd=yaml_path.parent,
            bufsize=1) as p:
        for line in p.stdout:
            log.write(line)
            tail.append(line)
            if progress:
                sys.stderr.write(line)
        rc = p.wait()
    if rc:
        last = "".join(line for line in tail if line.strip()).rstrip()
        raise CumedError(f"llamafactory-cli train {yaml_path} failed (exit {rc}); whole log in {log_path}; its last "
                         f"lines:\n{last}")
    return cmd


def _base_model(cfg: dict, dv, folder: Path) -> Path:
    """The model folder LLaMA-Factory starts from: ``model:``, or a tiny LLaMA (with the tokenizer,
    named or trained on ``dv``) built into ``folder`` (it reads the tokenizer from there too)."""
    from training.model import build_model
    from training.tokenizer import load_tokenizer, train_tokenizer_from_version

    if cfg.get("model"):
        model = Path(cfg["model"])
        if cfg.get("tokenizer") and Path(cfg["tokenizer"]).resolve() != model.resolve():
            raise CumedError(f"LLaMA-Factory reads the tokenizer from the model folder {model}; drop --tokenizer "
                             f"{cfg['tokenizer']} or save that tokenizer into the model folder")
        if not (model / "config.json").is_file():
            raise CumedError(f"model folder {model} has no config.json; give a Hugging Face checkpoint folder or model: null")
        return model
    if cfg.get("tokenizer"):
        tok = load_tokenizer(cfg["tokenizer"])
    else:
        train_tokenizer_from_version(dv, int(cfg["tokenizer_vocab_size"]), folder)
        tok = load_tokenizer(folder)
    build_model(cfg, tok).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def _trainer_summary(final: Path) -> dict:
    state_path = final / "trainer_state.json"
    state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {}
    logs = [r for r in state.get("log_history", []) if "loss" in r]
    results = final / "all_results.json"
    res = json.loads(results.read_text(encoding="utf-8")) if results.is_file() else {}
    return {"steps": state.get("global_step"), "last": {"loss": logs[-1]["loss"]} if logs else {},
            "eval": {k: v for k, v in res.items() if k.startswith("eval_")}}


def train_with_llamafactory(store: Store | str, ref: str, stage: str, config: str | Path | None = None,
                            max_steps: int | None = None, runs_dir: str | Path | None = None, *, progress: bool = False,
                            lf_args: dict | None = None, venv: str | Path | None = None, **overrides) -> dict:
    """Export ``ref``, write LLaMA-Factory's YAML from the ``stage`` preset (``lf_args`` last, e.g.
    ``{"deepspeed": "ds_z3_config.json"}``), run ``llamafactory-cli train`` and write ``final/lineage.json``."""
    if stage not in EXPORT_FORMAT:
        raise CumedError(f"LLaMA-Factory runs stages {', '.join(EXPORT_FORMAT)} here, not {stage}; use --engine cumed")
    venv = Path(venv) if venv else lf_venv()
    lf_cli(venv)  # fail before exporting anything
    dv = load_version(store, ref, stage)
    cfg = cap_steps(load_config(stage, config, **overrides), max_steps)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    folder = Path(runs_dir or cfg["runs_dir"]) / f"{stage}-llamafactory-{stamp}"
    folder.mkdir(parents=True)
    atomic.write_text(folder / "config.yaml", yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    atomic.write_json(folder / "datasets.json", {"train": {"ref": dv.ref, "kind": dv.kind, "rows": dv.rows,
                                                           "content_hash": dv.content_hash, "path": str(dv.path)}})

    exported = export(dv, EXPORT_FORMAT[stage], folder / "data")
    model_dir = _base_model(cfg, dv, folder / "base-model")
    import torch

    cpu = not torch.cuda.is_available()
    final = (folder / "final").resolve()
    lf = {**lf_config(cfg, stage, model_dir.resolve(), (folder / "data").resolve(), exported["datasets"], final, cpu,
                      _world()), **(lf_args or {})}
    yaml_path = folder / "llamafactory.yaml"
    atomic.write_text(yaml_path, yaml.safe_dump(lf, sort_keys=False, allow_unicode=True))
    cmd = run_llamafactory(yaml_path, folder / "llamafactory.log", cpu, progress, venv)

    versions = lf_versions(venv)
    write_lineage(final, stage=stage, engine="llamafactory", datasets={"train": dv}, parent=cfg.get("model"),
                  tokenizer=str(model_dir), config=lf,
                  extra={"llamafactory_version": versions.get("llamafactory"), "llamafactory_venv": versions,
                         "cumed_config": cfg, "command": cmd,
                         **({} if cfg.get("model") else {"initial_weights": str(model_dir.resolve())})})
    return {"stage": stage, "engine": "llamafactory", "dataset": dv.ref, "content_hash": dv.content_hash,
            "run": str(folder), "final": str(final), "llamafactory_yaml": str(yaml_path), "command": cmd,
            "llamafactory_version": versions.get("llamafactory"), "lineage": str(final / "lineage.json"), **_trainer_summary(final)}
