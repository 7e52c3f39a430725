"""The run folder: one per training run, holding what it used, what it logged and checkpoints that resume exactly.

A run lives in ``runs/<name>-<timestamp>/`` (git-ignored)::

    config.yaml          the merged config the run used (preset + file + command-line overrides)
    datasets.json        the dataset references, kinds and content hashes, the tokenizer hash
    metrics.jsonl        one JSON object per logged step / evaluation
    checkpoints/step-0000010/state.pt   model + optimizer + scheduler + RNG + data position
    checkpoints/step-0000010/.metadata, __<rank>_0.distcp, rank-<rank>.pt
                         the same under FSDP, sharded: every rank writes its shard of the model and
                         optimizer (torch.distributed.checkpoint) and its own scheduler/RNG/position
    final/               the model (and tokenizer) in Hugging Face format, for the next stage

Resuming needs only the folder: its ``config.yaml`` is the config, its newest checkpoint the
state. Under DDP every rank opens the same folder (rank 0 picks the timestamp and broadcasts it)
and only rank 0 writes; the others wait at a barrier, so no rank reads a file before it exists.
Under FSDP no rank holds the whole model, so every rank writes (the folder must be shared by all
ranks: one machine, or a shared filesystem) and ``final/`` is gathered onto rank 0 first.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml

from cumed import atomic
from cumed.errors import CumedError

from training.config import cap_steps, load_config
from training.distributed import dist_info, is_sharded, unwrap
from training.memory_plan import check_fits
from training.seeds import rng_state, set_rng_state
from training.tokenizer import load_tokenizer


def open_run(stage: str, dv, config=None, max_steps: int | None = None, runs_dir=None, resume=None,
             extra_datasets: dict | None = None, **overrides) -> tuple["Run", dict]:
    """The run to train in, and its config: ``resume`` continues a run folder with the config it
    saved; otherwise the stage's preset with ``config``/``overrides`` (steps capped at
    ``max_steps``) starts a new run that records ``dv`` (and ``extra_datasets``) as its data."""
    if resume:
        run = Run.resume(resume)
        return run, run.config
    cfg = cap_steps(load_config(stage, config, **overrides), max_steps)
    # Refuse a setting that cannot fit before the run folder exists; build_model checks again with
    # the tokenizer the run resolves (trained on the data when none is named: its preset size here).
    named = cfg.get("tokenizer") and Path(cfg["tokenizer"]).is_dir()
    vocab = len(load_tokenizer(cfg["tokenizer"])) if named else int(cfg.get("tokenizer_vocab_size") or 32000)
    check_fits(cfg, vocab, cfg.get("model"), dist_info()[1], head="reward" if stage == "rm" else "causal")
    run = Run.start(stage, cfg, {"train": dataset_record(dv), **(extra_datasets or {})}, runs_dir or cfg["runs_dir"])
    return run, cfg


def dataset_record(dv, tokenizer_hash: str | None = None) -> dict:
    return {"ref": dv.ref, "kind": dv.kind, "rows": dv.rows, "content_hash": dv.content_hash,
            "path": str(dv.path), **({"tokenizer_sha256": tokenizer_hash} if tokenizer_hash else {})}


class Run:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rank, self.world = dist_info()

    @classmethod
    def start(cls, name: str, config: dict, datasets: dict, root: str | Path = "runs") -> "Run":
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
        rank, world = dist_info()
        if world > 1:  # every rank must agree on the folder
            box = [stamp]
            torch.distributed.broadcast_object_list(box, src=0)
            stamp = box[0]
        run = cls(Path(root) / f"{name}-{stamp}")
        if run.rank == 0:
            (run.path / "checkpoints").mkdir(parents=True, exist_ok=True)
            # atomic: a run killed while writing its config must not leave a folder that cannot resume
            atomic.write_text(run.path / "config.yaml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
            atomic.write_text(run.path / "datasets.json", json.dumps(datasets, indent=2, ensure_ascii=False) + "\n")
        run.barrier()
        return run

    @classmethod
    def resume(cls, path: str | Path) -> "Run":
        run = cls(path)
        if not (run.path / "config.yaml").is_file():
            raise CumedError(f"{path} is not a run folder (no config.yaml); give a runs/<name>-<timestamp> folder")
        return run

    @property
    def config(self) -> dict:
        return yaml.safe_load((self.path / "config.yaml").read_text(encoding="utf-8"))

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def log(self, record: dict) -> None:
        if self.rank == 0:
            with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")

    def metrics(self) -> list[dict]:
        p = self.path / "metrics.jsonl"
        return [json.loads(line) for line in p.read_text().splitlines()] if p.is_file() else []

    # ---- checkpoints

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first: ``step-N/state.pt`` (one file) or ``step-N/.metadata`` (sharded)."""
        root = self.path / "checkpoints"
        return sorted([*root.glob("step-*/state.pt"), *root.glob("step-*/.metadata")], key=lambda p: p.parent.name)

    def save(self, step: int, model, optimizer, scheduler, keep: int = 2, data: dict | None = None) -> None:
        if is_sharded(model):
            return self._save_sharded(step, model, optimizer, scheduler, keep, data)
        if self.rank == 0:
            state = {"step": step, "data": data or {}, "model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "rng": rng_state()}
            final = self.path / "checkpoints" / f"step-{step:07d}"
            # A checkpoint is a folder (step-N/state.pt), and cumed.atomic replaces single files: the
            # folder is built under a temporary name and renamed whole, its own rename on purpose.
            tmp = final.with_name(f".tmp-{final.name}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            torch.save(state, tmp / "state.pt")
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)  # a kill mid-save leaves only .tmp-*, never a half checkpoint
            for old in self.checkpoints()[:-keep] if keep else []:
                shutil.rmtree(old.parent, ignore_errors=True)
        self.barrier()

    def _save_sharded(self, step: int, model, optimizer, scheduler, keep: int, data: dict | None) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        final = self.path / "checkpoints" / f"step-{step:07d}"
        tmp = final.with_name(f".tmp-{final.name}")
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.barrier()
        model_sd, optim_sd = get_state_dict(model, optimizer)  # this rank's shards (DTensors), no gathering
        dcp.save({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(tmp))
        # each rank's own generator state (dropout masks differ per rank) and, for the record, the position
        torch.save({"step": step, "data": data or {}, "scheduler": scheduler.state_dict(), "rng": rng_state(),
                    "world": self.world}, tmp / f"rank-{self.rank:05d}.pt")
        # The rename waits for every rank's files: a kill before it leaves only .tmp-*, which is never
        # loaded, and a folder named step-N is always whole.
        self.barrier()
        if self.rank == 0:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in self.checkpoints()[:-keep] if keep else []:
                shutil.rmtree(old.parent, ignore_errors=True)
        self.barrier()

    def load_latest(self, model, optimizer, scheduler) -> int:
        """Restore the newest checkpoint; return its step (0 when there is none)."""
        ckpts = self.checkpoints()
        if not ckpts:
            return 0
        sharded = ckpts[-1].name == ".metadata"
        if sharded != is_sharded(model):
            raise CumedError(f"{ckpts[-1].parent} is {'a sharded (FSDP)' if sharded else 'a single-file'} checkpoint "
                             f"but the model is {'sharded' if is_sharded(model) else 'not sharded'}; resume with the "
                             f"run's own config.yaml (its parallelism: {'fsdp' if sharded else 'ddp'})")
        if sharded:
            return self._load_sharded(ckpts[-1].parent, model, optimizer, scheduler)
        state = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
        unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        return int(state["step"])

    def _load_sharded(self, folder: Path, model, optimizer, scheduler) -> int:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        # the current (sharded) state dicts are the templates DCP reads each rank's slice into; it
        # reshards when the number of ranks changed since the save
        model_sd, optim_sd = get_state_dict(model, optimizer)
        dcp.load({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=str(folder))
        set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd)
        own = folder / f"rank-{self.rank:05d}.pt"  # a rank the saving run did not have starts from rank 0's RNG
        state = torch.load(own if own.is_file() else folder / "rank-00000.pt", map_location="cpu", weights_only=False)
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        return int(state["step"])

    def save_final(self, model, tokenizer=None) -> Path:
        out = self.path / "final"
        full = None
        if is_sharded(model):  # every rank sends its shards; rank 0 ends with the whole model in host memory
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if self.rank == 0:
            unwrap(model).save_pretrained(str(out), **({"state_dict": full} if full is not None else {}))
            if tokenizer is not None:
                tokenizer.save_pretrained(str(out))
        self.barrier()
        return out
