"""The run folder: one per training run, holding what it used, what it logged and checkpoints that resume exactly.

A run lives in ``runs/<name>-<timestamp>/`` (git-ignored)::

    config.yaml          the merged config the run used (preset + file + command-line overrides)
    datasets.json        the dataset references, kinds and content hashes, the tokenizer hash
    metrics.jsonl        one JSON object per logged step / evaluation
    checkpoints/step-0000010/state.pt   model + optimizer + scheduler + RNG + data position
    final/               the model (and tokenizer) in Hugging Face format, for the next stage

Resuming needs only the folder: its ``config.yaml`` is the config, its newest checkpoint the
state. Under DDP every rank opens the same folder (rank 0 picks the timestamp and broadcasts it)
and only rank 0 writes; the others wait at a barrier, so no rank reads a file before it exists.
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
from training.distributed import dist_info, unwrap
from training.seeds import rng_state, set_rng_state


def open_run(stage: str, dv, config=None, max_steps: int | None = None, runs_dir=None, resume=None,
             extra_datasets: dict | None = None, **overrides) -> tuple["Run", dict]:
    """The run to train in, and its config: ``resume`` continues a run folder with the config it
    saved; otherwise the stage's preset with ``config``/``overrides`` (steps capped at
    ``max_steps``) starts a new run that records ``dv`` (and ``extra_datasets``) as its data."""
    if resume:
        run = Run.resume(resume)
        return run, run.config
    cfg = cap_steps(load_config(stage, config, **overrides), max_steps)
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
        return sorted((self.path / "checkpoints").glob("step-*/state.pt"))

    def save(self, step: int, model, optimizer, scheduler, keep: int = 2, data: dict | None = None) -> None:
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

    def load_latest(self, model, optimizer, scheduler) -> int:
        """Restore the newest checkpoint; return its step (0 when there is none)."""
        ckpts = self.checkpoints()
        if not ckpts:
            return 0
        state = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
        unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        return int(state["step"])

    def save_final(self, model, tokenizer=None) -> Path:
        out = self.path / "final"
        if self.rank == 0:
            unwrap(model).save_pretrained(str(out))
            if tokenizer is not None:
                tokenizer.save_pretrained(str(out))
        self.barrier()
        return out
