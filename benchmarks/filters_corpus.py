"""The real corpus the filter benchmark and the decision check run on.

``load_corpus(raw)`` returns ``(source, text)`` for
- every enabled source of ``datasets/cumed-pretrain.yaml``, read with the project readers
  (``curation.readers.make_reader``), records with a ``read_error`` left out (the build drops
  them before any filter);
- plus the text sources the pretraining recipe does not use (SFT dialogues, evaluation sets,
  the synthetic Huatuo QA), read ad hoc as the first version of ``filters_bench.py`` did, so
  the filters are also measured on dialogue-shaped text.

``prepared(raw)`` additionally runs ``Normalize`` then ``PIIRedactor`` (as the pipeline does
before the filters) and caches the result as a pickle under ``$TMPDIR`` keyed by the raw files'
sizes/mtimes and the code of normalize.py / pii.py, so repeated runs skip the slow part.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pickle
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RAW = Path(os.environ.get("CUMED_RAW", ROOT.parent / "shared" / "data" / "raw"))
RECIPE = ROOT / "datasets" / "cumed-pretrain.yaml"


def _json(path: Path):
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:  # JSON Lines
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def recipe_docs(raw: Path = RAW, recipe: Path = RECIPE) -> list[tuple[str, str]]:
    """(source, text) of every enabled source of the pretraining recipe, via the project readers."""
    from curation.readers import make_reader
    from curation.recipe import load_recipe

    r = load_recipe(recipe, raw)
    out = []
    for s in r.sources:
        if not s.enabled:
            continue
        src = {"name": s.name, "reader": s.reader, "path": s.path, "category": s.category,
               "department": s.department, "license": s.license, "options": s.options}
        reader = make_reader(src, str(Path(raw).resolve()))
        for f in s.files:
            local = os.path.relpath(str(f.resolve()), reader.data_folder.path)
            for doc in reader.read_file(local):
                if doc.metadata.get("read_error"):
                    continue
                out.append((s.name, doc.text))
    return out


def adhoc_docs(raw: Path = RAW) -> list[tuple[str, str]]:
    """Text sources outside the pretraining recipe (dialogues, eval sets, synthetic QA)."""
    docs: list[tuple[str, str]] = []
    add = docs.append
    for item in _json(raw / "Zhongjing_CMtMedQA/data/huatuo26M_test.json"):
        add(("huatuo26m", "\n".join(item["instruction"] + [item.get("input", "")] + item["output"]).strip()))
    for item in _json(raw / "Huatuo_Llama_Med_Chinese/data/llama_data.json"):
        add(("huatuo_llama", f"{item['instruction']}\n{item['input']}\n{item['output']}".replace("\n\n", "\n")))
    for item in _json(raw / "Huatuo_Llama_Med_Chinese/data-literature/liver_cancer.json"):
        add(("liver_cancer", f"{item['instruction']}\n{item.get('output', '')}"))
    for item in _json(raw / "MedicalGPT_shibing624/data/sft/medical_sft_1K_format.jsonl"):
        add(("medicalgpt_sft", "\n".join(t["value"] for t in item["conversations"])))
    for item in _json(raw / "Zhongjing_CMtMedQA/data/CMtMedQA_test.json"):
        if "history" in item:
            turns = [x for qa in item["history"] for x in qa] + [item["instruction"], item["output"]]
        else:
            turns = [item.get("instruct", ""), item.get("output", "")]
        add(("cmtmedqa", "\n".join(turns)))
    with open(raw / "BianQue_example/data/cMedialog_example.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            add(("bianque", f"{row['input']}\n{row['target']}"))
    for item in _json(raw / "DISC_MedLLM_eval/eval/samples/CMB-cases.json"):
        add(("cmb_clin", item["case"]))
    return docs


def load_corpus(raw: Path = RAW) -> list[tuple[str, str]]:
    return recipe_docs(raw) + adhoc_docs(raw)


def _cache_key(raw: Path) -> str:
    h = hashlib.sha1()
    for p in sorted(Path(raw).rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(raw)}:{st.st_size}:{int(st.st_mtime)}".encode())
    for p in (RECIPE, Path(__file__), ROOT / "curation/steps/normalize.py", ROOT / "curation/steps/pii.py"):
        h.update(p.read_bytes())
    h.update(str(sorted((p.name, p.stat().st_size) for p in (ROOT / "curation/readers").glob("*.py"))).encode())
    return h.hexdigest()[:16]


def prepared(raw: Path = RAW, cache: bool = True) -> dict:
    """{"raw": [(source, text)], "normalized": [text], "redacted": [text]} (cached pickle)."""
    path = Path(tempfile.gettempdir()) / f"cumed-filters-corpus-{_cache_key(raw)}.pkl"
    if cache and path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)
    from curation.steps.normalize import Normalize
    from curation.steps.pii import PIIRedactor

    docs = load_corpus(raw)
    norm, pii = Normalize(), PIIRedactor()
    normalized = [norm.transform(t) for _, t in docs]
    redacted = [pii.transform(t) for t in normalized]
    data = {"raw": docs, "normalized": normalized, "redacted": redacted}
    if cache:
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
    return data


if __name__ == "__main__":
    from collections import Counter

    d = prepared(cache=False)
    c = Counter(s for s, _ in d["raw"])
    print(len(d["raw"]), "docs", sum(len(t.encode()) for t in d["redacted"]) / 1e6, "MB")
    for s, n in c.items():
        print(f"  {s}: {n}")
