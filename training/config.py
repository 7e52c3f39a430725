"""A stage's config: its preset, then a file, then command-line overrides, merged into one dict.

The presets (``training/configs/<stage>.yaml``) list every key a stage reads, so a config file
may only set known keys: a typo is an error naming the known ones, never a silently ignored
setting. The merged dict is what the run folder saves (``config.yaml``) and what a resumed run
reads back, so everything that decides a run's result, the ``--max-steps`` cap included, lives in it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from cumed.errors import CumedError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def load_config(stage: str, path: str | Path | None = None, **overrides) -> dict:
    """The stage's preset (``training/configs/<stage>.yaml``), then ``path``, then non-None overrides."""
    cfg = yaml.safe_load((CONFIG_DIR / f"{stage}.yaml").read_text(encoding="utf-8")) or {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise CumedError(f"config {path} not found; presets are in {CONFIG_DIR} (pretrain, sft, rm, rs .yaml)")
        extra = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        unknown = sorted(set(extra) - set(cfg))
        if unknown:
            raise CumedError(f"unknown config key(s) {', '.join(unknown)} in {path}; known keys: {', '.join(sorted(cfg))}")
        cfg.update(extra)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def cap_steps(cfg: dict, max_steps: int | None) -> dict:
    """Record the command line's ``--max-steps`` in the run's config, so a resumed run stops there too."""
    if max_steps:
        cfg["max_steps_cap"] = int(max_steps)
    return cfg
