"""LLaMA-Factory's own loader on our exports: every exported row must survive its loading.

The SFT version (``datasets/cumed-sft.yaml`` built from the raw data) is exported with
``llamafactory`` and the DISC-MedLLM preferences (``cumed-rm``) with ``llamafactory-rm`` into one
folder (one ``dataset_info.json``). A tiny LLaMA and a tokenizer with our chat template are saved
to tmp. Then ``tests/training/_llamafactory_load.py`` runs inside ``.venv-llamafactory``
(LLaMA-Factory 0.9.5 in its own venv: it pins its own torch/transformers; ``make llamafactory``),
offline, and calls ``get_train_args`` (stage ``sft`` per SFT entry, ``rm`` per ranking entry,
``template`` unset so the tokenizer's chat template is parsed) + ``get_dataset``. LLaMA-Factory
drops rows it cannot convert or tokenise with only a warning, so the test compares its row
counts with the exported ones. ``$CUMED_LF_VENV`` overrides the venv path.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LF_VENV = Path(os.environ.get("CUMED_LF_VENV") or REPO / ".venv-llamafactory")
LOADER = Path(__file__).with_name("_llamafactory_load.py")
LF_VERSION = "0.9.5"  # the Makefile's LF_VERSION; its target touches .cumed-llamafactory-<version> when done


def lf_python() -> Path:
    py = LF_VENV / "bin" / "python"
    if not py.is_file() or not (LF_VENV / f".cumed-llamafactory-{LF_VERSION}").is_file():
        pytest.fail(f"LLaMA-Factory {LF_VERSION} venv not found (or not completely installed) at {LF_VENV}: "
                    f"run `make llamafactory` (installs llamafactory=={LF_VERSION} into .venv-llamafactory, "
                    f"~2-4 min and ~6.5 GB once)")
    return py


def exported_rows(path: Path) -> int:
    return len(json.loads(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def exports(raw_root, tmp_path_factory):
    from annotation.ranking.build import build_preferences_from_disc
    import training.exports  # noqa: F401 - registers the engines' formats, as the CLI does
    from cumed.exports import export
    from curation.sft.build import build_conversations
    from cumed.store import Store

    lf_python()  # fail first, before building anything
    tmp = tmp_path_factory.mktemp("lf")
    st = Store(tmp / "store")
    sft, _ = build_conversations(REPO / "datasets" / "cumed-sft.yaml", raw_root, st, progress=False)
    _, pref_ref = build_preferences_from_disc(raw_root, st)
    out = tmp / "export"
    res_sft = export(sft, "llamafactory", out)
    res_rm = export(st.get(pref_ref), "llamafactory-rm", out)
    return out, sft, res_sft, res_rm


@pytest.fixture(scope="module")
def tiny_model(exports, tmp_path_factory):
    """A tiny LLaMA + byte-level BPE with our chat template (``training.tokenizer``), trained on the export."""
    from tests.training.conftest import tiny_cfg
    from training.model import build_model
    from training.tokenizer import CHAT_TEMPLATE, load_tokenizer, train_tokenizer

    out, sft, _, _ = exports

    def texts():
        for r in sft.to_arrow(columns=["messages"]).to_pylist():
            for m in r["messages"]:
                yield m["content"]

    path = tmp_path_factory.mktemp("tiny") / "model"
    train_tokenizer(texts(), 400, path)
    tok = load_tokenizer(path)
    assert tok.chat_template == CHAT_TEMPLATE
    model = build_model(tiny_cfg("sft", tiny_hidden_size=32, tiny_layers=1, tiny_heads=2, tiny_kv_heads=2,
                                 tiny_intermediate_size=64), tok)
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def run_loader(spec: dict, tmp: Path) -> dict:
    py = lf_python()
    spec_path = tmp / "spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp / "hf"),
               CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               DISABLE_VERSION_CHECK="1", PYTHONPATH="")
    p = subprocess.run([str(py), str(LOADER), str(spec_path)], capture_output=True, text=True, env=env, cwd=tmp,
                       timeout=900)
    assert p.returncode == 0, f"LLaMA-Factory loading failed (rc {p.returncode}):\n{p.stderr[-4000:]}"
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON from the loader:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    res = json.loads(lines[-1])
    res["stderr"] = p.stderr
    return res


def test_llamafactory_loads_every_exported_row(exports, tiny_model, tmp_path):
    out, _, res_sft, res_rm = exports
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    assert set(res_sft["datasets"]) | set(res_rm["datasets"]) == set(info)  # one folder, both exports listed
    expected, loads = {}, []
    for stage, res in (("sft", res_sft), ("rm", res_rm)):
        for name in res["datasets"]:
            assert bool(info[name].get("ranking")) == (stage == "rm")
            expected[f"{stage}:{name}"] = exported_rows(out / info[name]["file_name"])
            loads.append({"stage": stage, "dataset": name})
        assert sum(v for k, v in expected.items() if k.startswith(stage + ":")) == res["rows"]
    assert all(v > 0 for v in expected.values()), expected
    got = run_loader({"dataset_dir": str(out), "model": str(tiny_model), "output_dir": str(tmp_path / "lf_out"),
                      "loads": loads}, tmp_path)
    print("exported", expected, "loaded by LLaMA-Factory", got["rows"])
    assert got["version"] == LF_VERSION
    assert got["rows"] == expected, (
        f"LLaMA-Factory kept {got['rows']}, exported {expected}; its warnings:\n"
        + "\n".join(line for line in got["stderr"].splitlines() if "Invalid" in line or "Dropped" in line)[-4000:])
