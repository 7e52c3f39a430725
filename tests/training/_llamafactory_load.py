"""Run INSIDE .venv-llamafactory (LLaMA-Factory 0.9.5), not in .venv: load exported datasets with
LLaMA-Factory's own argument parser and loader and print the rows it kept as JSON.

    python _llamafactory_load.py SPEC_JSON

SPEC_JSON: {"dataset_dir", "model", "output_dir", "loads": [{"stage": "sft"|"rm", "dataset": entry name}]}.
Prints one JSON line ``{"version": ..., "rows": {"<stage>:<entry>": n, ...}}`` with n the length of
``get_dataset(...)["train_dataset"]`` after conversion and tokenisation: LLaMA-Factory drops rows
it cannot convert (``Invalid role tag``) or preprocess (``Dropped invalid example``) with only a
warning, so a count below the exported rows means malformed rows. ``template`` is left unset:
LLaMA-Factory parses the tokenizer's own chat template.
"""

import json
import sys


def main(spec_path: str) -> None:
    import llamafactory
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    spec = json.loads(open(spec_path, encoding="utf-8").read())
    rows = {}
    for load in spec["loads"]:
        model_args, data_args, training_args, finetuning_args, _ = get_train_args({
            "stage": load["stage"],
            "do_train": True,
            "model_name_or_path": spec["model"],
            "dataset": load["dataset"],
            "dataset_dir": spec["dataset_dir"],
            "output_dir": spec["output_dir"],
            "cutoff_len": 65536,  # no length-based drop: only malformed rows may go missing
            "overwrite_cache": True,
            "report_to": "none",
            "use_cpu": True,
        })
        tokenizer_module = load_tokenizer(model_args)
        template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
        module = get_dataset(template, model_args, data_args, training_args, stage=load["stage"], **tokenizer_module)
        rows[f"{load['stage']}:{load['dataset']}"] = len(module["train_dataset"])
    print(json.dumps({"version": llamafactory.__version__, "rows": rows}))


if __name__ == "__main__":
    main(sys.argv[1])
