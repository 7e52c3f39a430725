"""Weak labels from the real data: real doctor answers (keep) vs GPT-distilled answers (discard).

The quality classifier is trained from review labels; until enough exist (and to test it on
real text), sources whose provenance is known give labels for free:

- **keep** (real doctors writing on consultation sites):
  ``toyhom_answers``: the ``answer`` column of Toyhom's 内科 sample CSV (GB18030), and
  ``cmtmedqa_answers``: the doctor turns of Zhongjing's CMtMedQA test dialogues (``output`` and
  the answer half of every ``history`` pair).
- **discard** (model-generated): ``huatuo_gpt_answers``: the ``output`` of Huatuo-Llama-Med-
  Chinese's ``llama_data.json`` (8,658 QA pairs generated with the GPT-3.5 API from CMeKG).

Not used: MedicalGPT's ``medical_sft_1K_format.jsonl`` calls its answer turns ``"from": "gpt"``
but the texts are web-consultation answers and encyclopedia snippets ("这位朋友你好,你的提问过于
简单..."), i.e. not GPT-written; Huatuo-26M test and the DISC evaluation dialogues are
evaluation sets (the pretraining recipe decontaminates against them), so they stay out of
training data.

``split(examples)`` makes the held-out set deterministically and per source: examples are
ordered by a salted sha1 of their text inside each source and the first ``held_out`` fraction
of every source is held out, so each source keeps its share on both sides and a run on another
machine gets the same split.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

KEEP, DISCARD = 1, 0


@dataclass(frozen=True)
class LabeledText:
    text: str
    label: int  # 1 = keep, 0 = discard
    source: str


@dataclass(frozen=True)
class WeakSource:
    name: str
    path: str  # relative to the raw root
    label: int
    description: str


WEAK_SOURCES = (
    WeakSource("toyhom_answers", "Toyhom_Chinese_medical_dialogue/样例_内科5000-6000.csv", KEEP,
               "real doctor answers (Toyhom 内科 CSV, answer column)"),
    WeakSource("cmtmedqa_answers", "Zhongjing_CMtMedQA/data/CMtMedQA_test.json", KEEP,
               "real doctor turns of CMtMedQA multi-turn dialogues (output + history answers)"),
    WeakSource("huatuo_gpt_answers", "Huatuo_Llama_Med_Chinese/data/llama_data.json", DISCARD,
               "GPT-3.5-generated answers (Huatuo-Llama-Med-Chinese llama_data.json output)"),
)


def _toyhom(path: Path) -> list[str]:
    with open(path, encoding="gb18030", newline="") as f:
        return [row.get("answer") or "" for row in csv.DictReader(f)]


def _cmtmedqa(path: Path) -> list[str]:
    out = []
    for rec in json.loads(path.read_text(encoding="utf-8")):
        for pair in rec.get("history") or []:
            if isinstance(pair, list) and len(pair) == 2:
                out.append(pair[1] or "")
        out.append(rec.get("output") or "")
    return out


def _huatuo_llama(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(json.loads(line).get("output") or "")
    return out


_READERS = {"toyhom_answers": _toyhom, "cmtmedqa_answers": _cmtmedqa, "huatuo_gpt_answers": _huatuo_llama}


def load_weak_labels(raw: str | Path, sources=None, min_chars: int = 2) -> list[LabeledText]:
    """Labelled answers from the raw corpus, exact duplicates removed.

    A text seen under both labels is dropped (it cannot teach anything); a text repeated under
    one label is kept once (the first source in ``WEAK_SOURCES`` order).
    """
    raw = Path(raw)
    chosen = [s for s in WEAK_SOURCES if sources is None or s.name in sources]
    seen: dict[str, LabeledText] = {}
    conflicted: set[str] = set()
    for s in chosen:
        path = raw / s.path
        if not path.is_file():
            raise FileNotFoundError(f"weak-label source {s.name}: {path} not found; pass the raw data root")
        for text in _READERS[s.name](path):
            text = text.strip()
            if len(text) < min_chars:
                continue
            prev = seen.get(text)
            if prev is None:
                seen[text] = LabeledText(text, s.label, s.name)
            elif prev.label != s.label:
                conflicted.add(text)
    return [ex for t, ex in seen.items() if t not in conflicted]


def source_lineage(raw: str | Path, sources=None) -> list[dict]:
    """What the weak labels came from, for the artifact's lineage (path, label, sha256)."""
    from cumed.hashing import sha256_file

    out = []
    for s in WEAK_SOURCES:
        if sources is None or s.name in sources:
            p = Path(raw) / s.path
            out.append({"name": s.name, "path": s.path, "label": "keep" if s.label == KEEP else "discard",
                        "description": s.description, "sha256": sha256_file(p)})
    return out


def _key(text: str, salt: str) -> str:
    return hashlib.sha1(f"{salt}\x00{text}".encode("utf-8")).hexdigest()


def split(examples: list[LabeledText], held_out: float = 0.2, salt: str = "cumed-quality-v1"):
    """(train, held_out) stratified by source, by salted hash of the text (deterministic)."""
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"held_out={held_out}: use a fraction between 0 and 1")
    by_source: dict[str, list[LabeledText]] = {}
    for ex in examples:
        by_source.setdefault(ex.source, []).append(ex)
    train, test = [], []
    for src in sorted(by_source):
        items = sorted(by_source[src], key=lambda e: _key(e.text, salt))
        n = int(round(len(items) * held_out))
        test.extend(items[:n])
        train.extend(items[n:])
    return train, test
