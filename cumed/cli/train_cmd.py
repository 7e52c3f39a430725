"""``cumed train tokenizer|pretrain|sft|rm|rs``: thin wrappers over the recipes in ``training/``.

Torch and transformers are imported when a command runs, so the rest of the CLI works without
the training extras; a missing one is reported with the install line.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cumed.errors import CumedError
from cumed.store import open_ref
from cumed.cli.app import JsonOpt, StoreOpt, app, emit, out

train_app = typer.Typer(help="Train on published versions: tokenizer, pretrain, sft, rm (reward model), rs "
                             "(rejection sampling).", no_args_is_help=True)
app.add_typer(train_app, name="train")

DatasetOpt = typer.Option(..., "--dataset", help="Dataset reference NAME@N (or NAME for the latest), or a full "
                                                  "s3://BUCKET/PREFIX/NAME@N read from that store.")
ConfigOpt = typer.Option(None, "--config", help="YAML overriding the stage preset (training/configs/<stage>.yaml).")
StepsOpt = typer.Option(None, "--max-steps", help="Stop after N optimizer steps.")
TokOpt = typer.Option(None, "--tokenizer", help="Tokenizer folder (default: the model's, else one trained on the data).")
ModelOpt = typer.Option(None, "--model", help="Start from this Hugging Face folder (default: a tiny LLaMA).")
RunsOpt = typer.Option(None, "--runs-dir", help="Where run folders go (default: runs/).")
ResumeOpt = typer.Option(None, "--resume", help="Continue the run in this runs/<stage>-<time> folder from its last checkpoint.")
LFEngineOpt = typer.Option("cumed", "--engine", help="cumed (this package's loop) or llamafactory (LLaMA-Factory's "
                                                   "trainer from .venv-llamafactory on an export of the version).")
LFArgOpt = typer.Option(None, "--llamafactory-arg", help="KEY=VALUE added to LLaMA-Factory's YAML, last "
                                                         "(e.g. deepspeed=ds_z3_config.json); repeatable.")


def _engine_opts(stage: str, engine: str, resume, extra: list[str] | None, option: str) -> dict:
    """The engine's own overrides; errors for what only another engine takes."""
    from training.engines import ENGINES, check_engine, parse_overrides

    check_engine(stage, engine)
    if engine == "cumed":
        if extra:
            raise CumedError(f"{option} goes to another engine; add --engine {ENGINES[stage][1]}")
        return {}
    if resume:
        raise CumedError(f"--resume continues cumed's own runs; with --engine {engine} start a new run")
    return parse_overrides(extra, option)


def _run_llamafactory(stage, st, dataset, config, max_steps, runs_dir, lf_args, as_json, tokenizer, model):
    from training.engines.llamafactory import train_with_llamafactory

    res = train_with_llamafactory(st, dataset, stage, config, max_steps, runs_dir, progress=not as_json, lf_args=lf_args,
                                  tokenizer=tokenizer, model=model)
    emit(res, as_json, lambda: out.print(
        f"[bold green]{stage}[/] (LLaMA-Factory {res['llamafactory_version']}) {res['dataset']}: {res['steps']} steps, "
        f"last loss {res['last'].get('loss', float('nan')):.4f}\nrun: {res['run']}\nLLaMA-Factory config: "
        f"{res['llamafactory_yaml']}\nfinal weights: {res['final']} (lineage.json names {res['content_hash'][:12]})"))


def _need_training():
    try:
        import torch  # noqa: F401 - checked here, used by the recipes
        import transformers  # noqa: F401
        from transformers.utils import logging as hf_logging
    except ImportError as e:
        raise CumedError(f"training needs torch and transformers ({e.name} is missing): pip install 'cumed[training]'") from e
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _report(res: dict, as_json: bool) -> None:
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return  # under torchrun only rank 0 prints (one JSON object on stdout)
    res = {k: v for k, v in res.items() if k not in ("candidates",)}

    def human():
        out.print(f"[bold green]{res.get('stage', 'done')}[/] {res.get('dataset', '')}: {res.get('steps')} steps, "
                  f"last loss {res.get('last', {}).get('loss', float('nan')):.4f}")
        if res.get("eval"):
            out.print(f"eval: {res['eval']}")
        if res.get("published"):
            out.print(f"published {res['published']} ({res.get('kept')} responses kept of {res.get('sampled')})")
        if res.get("generator"):
            g = res["generator"]
            out.print(f"sampled through the generator: {g['responses']}, {g['requests_sent']} requests, "
                      f"{len(g['failures'])} failed")
        out.print(f"run: {res.get('run')}\nfinal weights: {res.get('final')}")

    emit(res, as_json, human)


@train_app.command("tokenizer")
def tokenizer_cmd(dataset: str = DatasetOpt, vocab_size: int = typer.Option(8000, "--vocab-size", help="Vocabulary size."),
                  out_dir: Path = typer.Option(..., "--out", help="Folder to write the tokenizer to."),
                  store: str = StoreOpt, as_json: bool = JsonOpt):
    """Train a byte-level BPE (with a chat template) on a version's text.

    Example: cumed train tokenizer --dataset cumed-sft@1 --vocab-size 8000 --out tokenizers/cumed-8k
    """
    _need_training()
    from training.tokenizer import train_tokenizer_from_version

    st, dataset = open_ref(dataset, store)
    res = train_tokenizer_from_version(st.get(dataset), vocab_size, out_dir)
    emit(res, as_json, lambda: out.print(f"tokenizer of {res['vocab_size']} tokens trained on {res['dataset']} -> {res['tokenizer']}"))


@train_app.command("pretrain")
def pretrain_cmd(dataset: str = DatasetOpt, config: Path = ConfigOpt, max_steps: int = StepsOpt, tokenizer: str = TokOpt,
                 model: str = ModelOpt, runs_dir: str = RunsOpt, resume: Path = ResumeOpt, store: str = StoreOpt,
                 engine: str = typer.Option("cumed", "--engine", help="cumed (train here) or megatron (export .bin/.idx, "
                                                                      "write Megatron-LM's command, check it with "
                                                                      "megatron-core; Megatron-LM runs it)."),
                 megatron_arg: list[str] = typer.Option(None, "--megatron-arg", help="FLAG=VALUE for pretrain_gpt.py, "
                                                        "last (e.g. tensor-model-parallel-size=8; =false drops a "
                                                        "flag); repeatable."),
                 as_json: bool = JsonOpt):
    """Continued pretraining on a documents version, packed into fixed blocks.

    Example: cumed train pretrain --dataset cumed-pretrain@1 --max-steps 20
    Megatron-LM: cumed train pretrain --dataset cumed-pretrain@1 --engine megatron --tokenizer TOKENIZER_DIR
    """
    _need_training()
    megatron = _engine_opts("pretrain", engine, resume, megatron_arg, "--megatron-arg")
    st, dataset = open_ref(dataset, store)
    if engine == "megatron":
        from training.engines.megatron import prepare_megatron_pretrain

        res = prepare_megatron_pretrain(st, dataset, config, None, tokenizer, max_steps=max_steps, runs_dir=runs_dir,
                                        megatron_overrides=megatron, model=model)
        check = res["check"]
        emit(res, as_json, lambda: out.print(
            f"[bold green]pretrain[/] (Megatron-LM, prepared) {res['dataset']}: {res['tokens']:,} tokens, "
            f"{res['train_iters']} iterations\ndata: {res['data_path']}\nrun it: MEGATRON_LM=/path/to/Megatron-LM "
            f"bash {res['script']}\nmegatron-core GPTDataset: {check['samples_per_epoch']} samples an epoch, "
            f"{check['samples_read']} read back\nlineage: {res['lineage']}"))
        return
    from training.pretrain import train_pretrain

    _report(train_pretrain(st, dataset, config, max_steps, runs_dir, resume, progress=not as_json,
                           tokenizer=tokenizer, model=model), as_json)


@train_app.command("sft")
def sft_cmd(dataset: str = DatasetOpt, config: Path = ConfigOpt, max_steps: int = StepsOpt, tokenizer: str = TokOpt,
            model: str = ModelOpt, runs_dir: str = RunsOpt, resume: Path = ResumeOpt, store: str = StoreOpt,
            engine: str = LFEngineOpt, llamafactory_arg: list[str] = LFArgOpt,
            as_json: bool = JsonOpt):
    """Supervised fine-tuning on a conversations version (loss on assistant turns only).

    Example: cumed train sft --dataset cumed-sft@1 --model runs/pretrain-XXXX/final --max-steps 50
    LLaMA-Factory: cumed train sft --dataset cumed-sft@1 --engine llamafactory --llamafactory-arg deepspeed=ds_z3.json
    """
    _need_training()
    lf_args = _engine_opts("sft", engine, resume, llamafactory_arg, "--llamafactory-arg")
    st, dataset = open_ref(dataset, store)
    if engine == "llamafactory":
        return _run_llamafactory("sft", st, dataset, config, max_steps, runs_dir, lf_args, as_json, tokenizer, model)
    from training.sft import train_sft

    _report(train_sft(st, dataset, config, max_steps, runs_dir, resume, progress=not as_json,
                      tokenizer=tokenizer, model=model), as_json)


@train_app.command("rm")
def rm_cmd(dataset: str = DatasetOpt, config: Path = ConfigOpt, max_steps: int = StepsOpt, tokenizer: str = TokOpt,
           model: str = ModelOpt, runs_dir: str = RunsOpt, resume: Path = ResumeOpt, store: str = StoreOpt,
           engine: str = LFEngineOpt, llamafactory_arg: list[str] = LFArgOpt,
           as_json: bool = JsonOpt):
    """Reward model on a preferences version; accuracy on its validation and test splits.

    Example: cumed train rm --dataset cumed-preferences@1 --model runs/sft-XXXX/final
    LLaMA-Factory: cumed train rm --dataset cumed-preferences@1 --model runs/sft-XXXX/final --engine llamafactory
    """
    _need_training()
    lf_args = _engine_opts("rm", engine, resume, llamafactory_arg, "--llamafactory-arg")
    st, dataset = open_ref(dataset, store)
    if engine == "llamafactory":
        return _run_llamafactory("rm", st, dataset, config, max_steps, runs_dir, lf_args, as_json, tokenizer, model)
    from training.reward import train_rm

    _report(train_rm(st, dataset, config, max_steps, runs_dir, resume, progress=not as_json,
                     tokenizer=tokenizer, model=model), as_json)


@train_app.command("rs")
def rs_cmd(dataset: str = DatasetOpt, policy: Path = typer.Option(..., "--policy", help="SFT checkpoint folder (runs/sft-*/final)."),
           reward: Path = typer.Option(..., "--reward", help="Reward model folder (runs/rm-*/final)."),
           config: Path = ConfigOpt, max_steps: int = StepsOpt, runs_dir: str = RunsOpt, store: str = StoreOpt,
           generator: str = typer.Option(None, "--generator", help="inprocess (the preset's default), local "
                                         "('cumed serve' the policy), endpoint (a server already serving it), "
                                         "vllm or sglang (started on this GPU node)."),
           base_url: str = typer.Option(None, "--base-url", help="--generator endpoint: its OpenAI-compatible base URL."),
           model_name: str = typer.Option(None, "--model-name", help="--generator endpoint: the policy's name there."),
           api_key_env: str = typer.Option(None, "--api-key-env", help="--generator endpoint: variable holding its key."),
           as_json: bool = JsonOpt):
    """Rejection sampling: sample, score, keep the top-k, publish a new version, fine-tune on it.

    Example: cumed train rs --dataset cumed-sft@1 --policy runs/sft-XXXX/final --reward runs/rm-XXXX/final
    Through a vLLM server: ... --generator endpoint --base-url http://gpu-node:8000/v1 --model-name cumed-sft
    """
    _need_training()
    from training.rejection import train_rs

    st, dataset = open_ref(dataset, store)
    _report(train_rs(st, dataset, policy, reward, config, max_steps, runs_dir, progress=not as_json,
                     generator=generator, base_url=base_url, model_name=model_name, api_key_env=api_key_env), as_json)
