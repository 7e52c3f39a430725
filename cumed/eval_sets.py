"""Named evaluation sets, as ``(item_id, text)`` pairs, for decontamination.

Each loader reads one set from the raw data folder (``--raw``, e.g. ``../shared/data/raw``)
and yields the text a model could have memorised: the question AND the reference answer where
the set has one. Item ids are the set's own ids; Huatuo-26M's test file has empty ``id``
fields, so its items are numbered by position in the file (``0`` ... ``5999``), which is stable
as long as the file is.

Not done here: downloading sets or choosing which sets a recipe uses (the recipe names them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

EvalItems = Iterator[tuple[str, str]]

# Files each set reads by default (relative to the raw folder: the seed's layout); a recipe's
# ``decontaminate: {paths: {<set>: [files]}}`` replaces them. Their sha256 keys the index cache.
EVAL_FILES: dict[str, tuple[str, ...]] = {
    "huatuo26m_test": ("Zhongjing_CMtMedQA/data/huatuo26M_test.json",),
    "cmb_clin": ("DISC_MedLLM_eval/eval/samples/CMB-cases.json",),
    "disc_eval": ("DISC_MedLLM_eval/eval/samples/cmd_samples.json", "DISC_MedLLM_eval/eval/samples/cmid_samples.json"),
}


def _load(raw: Path, rel: str):
    path = Path(raw) / rel
    if not path.exists():
        raise FileNotFoundError(f"evaluation set file {path} not found; pass --raw the folder holding it, or set the "
                                "set's files in the recipe (steps.decontaminate.paths.<set>)")
    raw_bytes = path.read_bytes()
    try:
        return json.loads(raw_bytes.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        problem = (f"it ends inside a character at byte {e.start} (the file was cut)" if e.reason == "unexpected end of data"
                   else f"bytes {e.object[e.start:e.end]!r} at byte {e.start} are not valid utf-8")
    except json.JSONDecodeError as e:
        problem = f"invalid JSON at line {e.lineno}, column {e.colno} ({e.msg})"
    # Decontaminating against part of a set would let the rest leak into training: refuse.
    raise ValueError(f"evaluation set file {path}: {problem}; fix: restore the file, or drop the set from the "
                     f"eval_sets of the recipe's decontaminate step")


def huatuo26m_test(raw: str | Path, files=EVAL_FILES["huatuo26m_test"]) -> EvalItems:
    """Huatuo-26M test set (6,000 items ``{id, instruction[], input, output[]}``): question + answer.
    Items without an id are numbered by position (across ``files``, in order)."""
    i = 0
    for rel in files:
        for item in _load(raw, rel):
            parts = list(item.get("instruction") or []) + [item.get("input") or ""] + list(item.get("output") or [])
            yield (str(item.get("id") or i), "\n".join(p for p in parts if p))
            i += 1


def cmb_clin(raw: str | Path, files=EVAL_FILES["cmb_clin"]) -> EvalItems:
    """CMB-Clin, 73 clinical cases ``{id, case, first_question}``."""
    for rel in files:
        for item in _load(raw, rel):
            yield (str(item["id"]), f"{item.get('case', '')}\n{item.get('first_question', '')}")


def disc_eval(raw: str | Path, files=EVAL_FILES["disc_eval"]) -> EvalItems:
    """DISC-MedLLM evaluation prompts: CMD samples (question + real doctor answer ``raw_anwser``,
    the authors' spelling) and CMID samples (question). Ids are prefixed with the file's name
    before ``_samples`` (``cmd/``, ``cmid/``)."""
    for rel in files:
        name = Path(rel).stem.removesuffix("_samples")
        for item in _load(raw, rel):
            text = "\n".join(x for x in (item.get("question"), item.get("raw_anwser")) if x)
            yield (f"{name}/{item['id']}", text)


EVAL_SETS: dict[str, Callable[[str | Path], EvalItems]] = {
    "huatuo26m_test": huatuo26m_test,
    "cmb_clin": cmb_clin,
    "disc_eval": disc_eval,
}



def _files(name: str, files) -> tuple[str, ...]:
    if name not in EVAL_FILES:
        raise KeyError(f"unknown evaluation set {name!r}; use one of {', '.join(EVAL_SETS)}")
    if files is None:
        return EVAL_FILES[name]
    return (files,) if isinstance(files, (str, Path)) else tuple(files)


def eval_set_files(name: str, raw: str | Path, files=None) -> list[Path]:
    """The files set ``name`` reads: ``files`` (relative to ``raw``, or absolute) or its defaults."""
    return [Path(raw) / rel for rel in _files(name, files)]


def load_eval_set(name: str, raw: str | Path, files=None) -> EvalItems:
    files = _files(name, files)  # an unknown name: KeyError naming the sets
    return EVAL_SETS[name](raw, files)
