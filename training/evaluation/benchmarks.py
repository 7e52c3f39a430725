"""Benchmark prompts for evaluation, and model answers read as JSONL ``{id, answer}``.

Sets (``name`` for ``load_benchmark``), with the same item ids as ``cumed.eval_sets`` (which
reads the same files for decontamination):

* ``huatuo26m_test``: 6,000 items; the file's ids are empty, so the id is the position ``0..5999``;
  reference = the doctor's answer.
* ``cmb_clin``: CMB-Clin, 73 cases; prompt = case + first question; no reference.
* ``disc_cmd``: DISC CMD samples (ids ``cmd/<id>``); reference = the real doctor answer (``raw_anwser``).
* ``disc_cmid``: DISC CMID samples (ids ``cmid/<id>``); no reference.
* ``disc_eval``: ``disc_cmd`` + ``disc_cmid``.

Each item is flagged ``urology`` when its prompt (or, for CMD, its department) contains one of
``UROLOGY_KEYWORDS``; the reference answer is not searched, so a question about something else
whose answer mentions the bladder in passing stays out. ``subset="urology"`` keeps only those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cumed.errors import CumedError
from cumed.eval_sets import EVAL_FILES

UROLOGY_KEYWORDS = ("泌尿", "男科", "前列腺", "膀胱", "肾结石", "输尿管", "尿道", "睾丸", "附睾", "阴茎", "包皮",
                    "早泄", "阳痿", "勃起", "精液", "不育")

BENCHMARKS = ("huatuo26m_test", "cmb_clin", "disc_cmd", "disc_cmid", "disc_eval")
SUBSETS = ("all", "urology")


@dataclass
class BenchItem:
    id: str
    prompt: str
    reference: str | None = None
    urology: bool = False
    meta: dict = field(default_factory=dict)


def is_urology(text: str) -> bool:
    return any(k in (text or "") for k in UROLOGY_KEYWORDS)


def _read(raw: str | Path, rel: str):
    path = Path(raw) / rel
    if not path.is_file():
        raise CumedError(f"benchmark file {path} not found; pass the raw data folder with --raw (e.g. ../shared/data/raw)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _huatuo(raw) -> list[BenchItem]:
    items = []
    for i, it in enumerate(_read(raw, EVAL_FILES["huatuo26m_test"][0])):
        prompt = "\n".join(p for p in [*(it.get("instruction") or []), it.get("input") or ""] if p)
        ref = "\n".join(it.get("output") or []) or None
        items.append(BenchItem(str(it.get("id") or i), prompt, ref, is_urology(prompt)))
    return items


def _cmb(raw) -> list[BenchItem]:
    items = []
    for it in _read(raw, EVAL_FILES["cmb_clin"][0]):
        prompt = f"{it.get('case', '')}\n{it.get('first_question', '')}".strip()
        items.append(BenchItem(str(it["id"]), prompt, None, is_urology(prompt)))
    return items


def _cmd(raw) -> list[BenchItem]:
    return [BenchItem(f"cmd/{it['id']}", it["question"], it.get("raw_anwser") or None,
                      is_urology(it["question"]) or is_urology(it.get("department", "")),
                      {"department": it.get("department")})
            for it in _read(raw, EVAL_FILES["disc_eval"][0])]


def _cmid(raw) -> list[BenchItem]:
    return [BenchItem(f"cmid/{it['id']}", it["question"], None, is_urology(it["question"]), {"cate": it.get("cate")})
            for it in _read(raw, EVAL_FILES["disc_eval"][1])]


_LOADERS = {"huatuo26m_test": _huatuo, "cmb_clin": _cmb, "disc_cmd": _cmd, "disc_cmid": _cmid,
            "disc_eval": lambda raw: _cmd(raw) + _cmid(raw)}


def load_benchmark(name: str, raw: str | Path, subset: str = "all") -> list[BenchItem]:
    if name not in _LOADERS:
        raise CumedError(f"unknown benchmark {name!r}; use one of {', '.join(BENCHMARKS)}")
    if subset not in SUBSETS:
        raise CumedError(f"unknown subset {subset!r}; use one of {', '.join(SUBSETS)}")
    items = _LOADERS[name](raw)
    return [it for it in items if it.urology] if subset == "urology" else items


def load_answers(path: str | Path) -> dict[str, str]:
    """``{id: answer}`` from JSONL lines ``{"id": ..., "answer": ...}``; a bad line or a repeated id is an error."""
    path = Path(path)
    if not path.is_file():
        raise CumedError(f"answers file {path} not found; give a JSONL file of {{\"id\", \"answer\"}} lines")
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                key, ans = str(rec["id"]), rec["answer"]
            except (ValueError, KeyError, TypeError) as e:
                raise CumedError(f"{path}:{n}: not a JSON object with 'id' and 'answer' ({e})") from e
            if not isinstance(ans, str):
                raise CumedError(f"{path}:{n}: 'answer' must be a string")
            if key in out:
                raise CumedError(f"{path}:{n}: id {key!r} appears twice; keep one answer per id")
            out[key] = ans
    return out
