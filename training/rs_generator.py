"""Rejection sampling through the generator (``cumed.generation``): which server answers for the policy.

``generator`` (rs preset) picks it:

- ``local``: ``cumed serve <policy folder>`` as a child process on a free port (a subprocess: the
  policy's tokenizer and chat template, real ``generate``; one request at a time: for checks and
  small runs, not throughput);
- ``endpoint``: a vLLM/SGLang/OpenAI-compatible server someone already started for the policy
  (``base_url``, ``model_name``; the key, if any, from the environment variable ``api_key_env``);
- ``vllm`` / ``sglang``: datatrove's ``InferenceRunner`` starts that server from the policy folder
  on this GPU node (``cumed generate --server vllm`` does the same).

``sample_via_generator`` asks for ``samples_per_prompt`` responses to each of the first
``n_prompts`` prompts and publishes them as a ``responses`` version (resumable in the generator's
work folder: a rerun of the same command sends no request that was answered before).
"""

from __future__ import annotations

import time
from pathlib import Path

from cumed.errors import CumedError
from cumed.generation.local_server import serve_checkpoint
from cumed.hashing import checkpoint_sha256

GENERATORS = ("inprocess", "local", "endpoint", "vllm", "sglang")
# the CLI's entry point, run as a child: training never imports the CLI


def check_generator(cfg: dict) -> str:
    """The preset's ``generator``, with the options it needs; errors before any model is loaded."""
    gen = cfg.get("generator") or "inprocess"
    if gen not in GENERATORS:
        raise CumedError(f"generator {gen!r}: use one of {', '.join(GENERATORS)}")
    if gen == "endpoint":
        if not cfg.get("base_url") or not cfg.get("model_name"):
            raise CumedError("generator endpoint needs --base-url URL and --model-name NAME (the server that serves "
                             "the policy, and the name it knows it by)")
    elif cfg.get("base_url"):
        raise CumedError(f"--base-url is for generator endpoint; generator {gen} "
                         f"{'starts its own server' if gen != 'inprocess' else 'samples in this process'}")
    if gen in ("local", "vllm", "sglang") and cfg.get("tokenizer"):
        raise CumedError(f"generator {gen} serves the policy folder with its own tokenizer; leave tokenizer null "
                         "(or use generator inprocess)")
    return gen


def policy_name(policy_dir: str | Path, cfg: dict) -> str:
    """``model_name``, else the run folder's name for a run's ``final/`` (``sft-20240101-...``)."""
    if cfg.get("model_name"):
        return str(cfg["model_name"])
    p = Path(policy_dir).resolve()
    return p.parent.name if p.name == "final" else p.name


def _target(gen: str, policy_dir: str | Path, cfg: dict, url: str | None = None):
    from cumed.generation.targets import Target

    name = policy_name(policy_dir, cfg)
    if gen == "endpoint":
        return Target(name=name, url=cfg["base_url"], key_env=cfg.get("api_key_env"))
    if gen == "local":  # the port changes every run; the checkpoint's hash keys the work folder instead
        return Target(name=name, url=url, model_path=str(policy_dir), local=True, stamp=checkpoint_sha256(policy_dir))
    return Target(name=name, server=gen, model_path=str(policy_dir))


def sample_via_generator(st, dv, policy_dir: str | Path, cfg: dict, name: str):
    """The generator's ``responses`` version of ``dv``'s prompts; returns (version, report, generator lineage)."""
    from dataclasses import replace

    from cumed.generation import generate
    from cumed.generation.targets import host_of

    gen = check_generator(cfg)
    kw = dict(k=int(cfg["samples_per_prompt"]), n=int(cfg["n_prompts"]), split=cfg.get("split"),
              max_tokens=int(cfg["max_new_tokens"]), temperature=float(cfg["temperature"]),
              top_p=float(cfg["top_p"]), seed=int(cfg["seed"]), name=name,
              concurrency=int(cfg.get("generator_concurrency") or 8))
    target = _target(gen, policy_dir, cfg, url="http://127.0.0.1:1/v1" if gen == "local" else None)
    started = time.time()
    if gen == "local":
        with serve_checkpoint(policy_dir, target.name, cfg.get("serve_request_log")) as url:
            rv, rep = generate(st, dv.ref, [replace(target, url=url)], **kw)
    else:
        rv, rep = generate(st, dv.ref, [target], **kw)
    lineage = {"kind": gen, "model": target.name, "server": target.public()["server"],
               "endpoint": host_of(target.url) if gen == "endpoint" else None,
               "path": target.model_path, "responses": rv.ref,
               "params": rv.manifest["lineage"]["generation"]["params"],
               "samples_per_prompt": kw["k"], "seed": kw["seed"]}
    report = {"responses": rv.ref, "requests_sent": rep["requests_sent"], "failures": rep["failures"],
              "prompt_tokens": rep["prompt_tokens"], "completion_tokens": rep["completion_tokens"],
              "seconds": round(time.time() - started, 1)}
    return rv, report, lineage
