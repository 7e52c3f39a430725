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


def _load(raw: Path, rel: str):
    path = Path(raw) / rel
    if not path.exists():
        raise FileNotFoundError(f"evaluation set file {path} not found; pass the raw data folder (e.g. ../shared/data/raw)")
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


def huatuo26m_test(raw: str | Path) -> EvalItems:
    """Huatuo-26M test set (6,000 items ``{id, instruction[], input, output[]}``): question + answer."""
    for i, item in enumerate(_load(raw, "Zhongjing_CMtMedQA/data/huatuo26M_test.json")):
        parts = list(item.get("instruction") or []) + [item.get("input") or ""] + list(item.get("output") or [])
        yield (str(item.get("id") or i), "\n".join(p for p in parts if p))


def cmb_clin(raw: str | Path) -> EvalItems:
    """CMB-Clin, 73 clinical cases ``{id, case, first_question}``."""
    for item in _load(raw, "DISC_MedLLM_eval/eval/samples/CMB-cases.json"):
        yield (str(item["id"]), f"{item.get('case', '')}\n{item.get('first_question', '')}")


def disc_eval(raw: str | Path) -> EvalItems:
    """DISC-MedLLM evaluation prompts: CMD samples (question + real doctor answer ``raw_anwser``,
    the authors' spelling) and CMID samples (question). Ids are prefixed ``cmd/`` and ``cmid/``."""
    for name in ("cmd", "cmid"):
        for item in _load(raw, f"DISC_MedLLM_eval/eval/samples/{name}_samples.json"):
            text = "\n".join(x for x in (item.get("question"), item.get("raw_anwser")) if x)
            yield (f"{name}/{item['id']}", text)


EVAL_SETS: dict[str, Callable[[str | Path], EvalItems]] = {
    "huatuo26m_test": huatuo26m_test,
    "cmb_clin": cmb_clin,
    "disc_eval": disc_eval,
}


# Files each set reads (relative to the raw folder): their sha256 keys the decontamination index cache.
EVAL_FILES: dict[str, tuple[str, ...]] = {
    "huatuo26m_test": ("Zhongjing_CMtMedQA/data/huatuo26M_test.json",),
    "cmb_clin": ("DISC_MedLLM_eval/eval/samples/CMB-cases.json",),
    "disc_eval": ("DISC_MedLLM_eval/eval/samples/cmd_samples.json", "DISC_MedLLM_eval/eval/samples/cmid_samples.json"),
}


def eval_set_files(name: str, raw: str | Path) -> list[Path]:
    if name not in EVAL_FILES:
        raise KeyError(f"unknown evaluation set {name!r}; use one of {', '.join(EVAL_SETS)}")
    return [Path(raw) / rel for rel in EVAL_FILES[name]]


def load_eval_set(name: str, raw: str | Path) -> EvalItems:
    if name not in EVAL_SETS:
        raise KeyError(f"unknown evaluation set {name!r}; use one of {', '.join(EVAL_SETS)}")
    return EVAL_SETS[name](raw)
