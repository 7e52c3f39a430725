"""The engines teams already train with, fed cumed's versions and recorded in its lineage.

``cumed`` trains itself (``training/pretrain.py``, ``sft.py``, ``reward.py``); ``llamafactory``
runs LLaMA-Factory's trainer from its own venv on an export of the version (sft, rm);
``megatron`` prepares a Megatron-LM pretraining run (data, command line) and checks it with
megatron-core's dataset. The stage preset stays the one source of hyperparameters: each engine
module maps it to its engine's names.
"""

from __future__ import annotations

from cumed.errors import CumedError

ENGINES = {"pretrain": ("cumed", "megatron"), "sft": ("cumed", "llamafactory"), "rm": ("cumed", "llamafactory")}


def check_engine(stage: str, engine: str) -> str:
    valid = ENGINES.get(stage, ("cumed",))
    if engine not in valid:
        raise CumedError(f"unknown engine {engine!r} for cumed train {stage}; use one of {', '.join(valid)}")
    return engine


def parse_overrides(items: list[str] | None, option: str) -> dict:
    """``KEY=VALUE`` pairs from the command line; values read as YAML (``true``, ``2``, ``[a, b]``),
    except YAML 1.1's other booleans: ``save_strategy=no`` stays the string ``no``."""
    import yaml

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CumedError(f"{option} {item!r} is not KEY=VALUE; e.g. {option} deepspeed=ds_z3_config.json")
        parsed = yaml.safe_load(value) if value else None
        if isinstance(parsed, bool) and value.strip().lower() not in ("true", "false"):
            parsed = value.strip()
        out[key.strip()] = parsed
    return out
