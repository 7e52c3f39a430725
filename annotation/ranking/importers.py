"""Importers for real rankings: DISC-MedLLM's evaluation set and MedicalGPT's reward pairs.

DISC-MedLLM (``DISC_MedLLM_eval/eval``): 313 prompts (CMD 120, CMID 120, CMB-Clin 73), each
answered by 6 models in a simulated multi-turn consultation (``dialogues/<model>_<set>.json``)
and scored 1-5 by GPT-4 on Proactivity / Accuracy / Helpfulness / Linguistic Quality, stored as
free text (``gpt4_scores/<set>/result_<model>_<set>[_v2].jsonl``, ``"Proactivity: 4\\nAccuracy: 5..."``).
CMD samples carry the real doctor answer (``raw_anwser``, sic). The response ranked is the model's
first doctor turn (the answer to the shared question); the GPT-4 score judges the whole
simulated consultation: a known approximation, stated in the card.

Ranking methods (recorded per row in ``method`` and in lineage):
- ``gpt4_score`` (default): by total GPT-4 score, equal totals kept as one tie group; the doctor
  answer (no GPT-4 score) goes on top (``doctor="top"``, the paper's premise) or is left out
  (``doctor="exclude"``).
- ``source_order`` (``--source-order``): by source, ``DISC_SOURCE_ORDER`` (doctor > gpt-4 >
  gpt-3.5-turbo > ...), as the paper ranked doctor > ChatGPT > GPT-3.5 > DeepSeek.

MedicalGPT (``MedicalGPT_shibing624/data/reward/test.json``): 100 ``{question, response_chosen,
response_rejected}`` -> 2-way rankings.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from pathlib import Path

import pyarrow as pa

from cumed.errors import CumedError
from cumed.hashing import sha256_file
from cumed.schemas import RESPONSE

from annotation.ranking.tasks import response_id, task_seed

DISC_DIR = "DISC_MedLLM_eval/eval"
DISC_SETS = {  # set -> (samples file, prompt field)
    "cmd": ("cmd_samples.json", "question"),
    "cmid": ("cmid_samples.json", "question"),
    "cmb-clin": ("CMB-cases.json", "first_question"),
}
DISC_SOURCE_ORDER = ("doctor", "gpt-4", "gpt-3.5-turbo", "DISC-MedLLM", "baichuan-chat", "huatuo-chat", "bianque-v2")
SCORE_DIMS = ("Proactivity", "Accuracy", "Helpfulness", "Linguistic Quality")
MEDICALGPT_REWARD = "MedicalGPT_shibing624/data/reward/test.json"
_SCORE_LINE = re.compile(r"^\s*\**\s*([A-Za-z][A-Za-z ]*?)\s*\**\s*[:：]\s*\**\s*([0-9]+(?:\.[0-9]+)?)")

RANKINGS_EXTRA = pa.schema([
    ("scores", pa.string()),          # JSON {response_id: {"total": x, "<dimension>": y, ...}}, "" if none
    ("method", pa.string()),          # annotation | gpt4_score | source_order | dataset_pairs
    ("seed", pa.int64()),             # display-order seed (annotation) / id seed (imports)
    ("order", pa.list_(pa.string())), # response ids in display / source order
    ("source", pa.string()),
    ("department", pa.string()),
])
RANKINGS_SCHEMA = pa.schema([("prompt_id", pa.string()), ("prompt", pa.string()), ("responses", pa.list_(RESPONSE)),
                             ("ranking", pa.list_(pa.list_(pa.string()))), ("annotator", pa.string()),
                             ("batch", pa.string())] + list(RANKINGS_EXTRA))


def parse_scores(text) -> dict | None:
    """``"Proactivity: 4\\nAccuracy: 5\\n..."`` -> {dimension: score}; None unless all four parse."""
    if not isinstance(text, str):
        return None
    found = {}
    for line in text.splitlines():
        m = _SCORE_LINE.match(line)
        if m:
            name = " ".join(m.group(1).split())
            for dim in SCORE_DIMS:
                if name.lower() == dim.lower():
                    found[dim] = float(m.group(2))
    return found if len(found) == len(SCORE_DIMS) else None


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise CumedError(f"{path} not found; pass --raw pointing at the folder holding {DISC_DIR.split('/')[0]}") from e


def _first_doctor_turn(conv: list[dict]) -> str | None:
    for turn in conv or []:
        if turn.get("role") in ("doctor", "assistant"):
            return turn.get("content")
    return None


def _score_file(base: Path, set_name: str, model: str) -> Path | None:
    for name in (f"result_{model}_{set_name}.jsonl", f"result_{model}_{set_name}_v2.jsonl"):
        p = base / "gpt4_scores" / set_name / name
        if p.is_file():
            return p
    return None


def read_disc(raw: str | Path, source_order: bool = False, doctor: str = "top", order: tuple = DISC_SOURCE_ORDER,
              models: list[str] | None = None, seed: int | str = "disc") -> tuple[pa.Table, dict]:
    """(rankings table, report) from the DISC-MedLLM evaluation files under ``raw``."""
    if doctor not in ("top", "exclude"):
        raise CumedError(f"doctor={doctor!r}: use top (doctor answer ranked first) or exclude")
    base = Path(raw) / DISC_DIR
    if not base.is_dir():
        raise CumedError(f"DISC-MedLLM eval folder {base} not found; pass --raw (default ../shared/data/raw)")
    method = "source_order" if source_order else "gpt4_score"
    found_models = sorted({p.name.rsplit("_", 1)[0] for p in (base / "dialogues").glob("*_*.json")})
    use = [m for m in found_models if models is None or m in models]
    report = {"method": method, "doctor": doctor, "models": use, "sets": {}, "unparsable_scores": [],
              "missing_scores": [], "missing_answers": [], "dialogues_without_prompt": [], "inputs": []}
    rows = []
    for set_name, (samples_file, field) in DISC_SETS.items():
        sp = base / "samples" / samples_file
        samples = _load_json(sp)
        report["inputs"].append({"path": str(sp.relative_to(Path(raw))), "sha256": sha256_file(sp)})
        answers: dict[str, dict[str, str]] = defaultdict(dict)
        scores: dict[str, dict[str, dict]] = defaultdict(dict)
        sample_ids = {str(s["id"]) for s in samples}
        for model in use:
            dp = base / "dialogues" / f"{model}_{set_name}.json"
            if not dp.is_file():
                report["missing_answers"].append({"set": set_name, "model": model, "file": str(dp.name)})
                continue
            report["inputs"].append({"path": str(dp.relative_to(Path(raw))), "sha256": sha256_file(dp)})
            for d in _load_json(dp):
                pid = str(d["id"])
                if pid not in sample_ids:
                    report["dialogues_without_prompt"].append({"set": set_name, "model": model, "id": pid})
                    continue
                text = _first_doctor_turn(d.get("conversation"))
                if text:
                    answers[pid][model] = text
            fp = _score_file(base, set_name, model)
            if fp is None:
                continue
            report["inputs"].append({"path": str(fp.relative_to(Path(raw))), "sha256": sha256_file(fp)})
            for n, line in enumerate(fp.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    report["unparsable_scores"].append({"set": set_name, "model": model, "id": None, "line": n,
                                                        "text": line[:80]})
                    continue
                parsed = parse_scores(rec.get("scores"))
                if parsed is None:
                    report["unparsable_scores"].append({"set": set_name, "model": model, "id": str(rec.get("id")),
                                                        "line": n, "text": str(rec.get("scores"))[:80]})
                    continue
                scores[str(rec.get("id"))][model] = {**parsed, "total": sum(parsed.values())}
        n_set = 0
        for s in samples:
            pid_native = str(s["id"])
            prompt = s.get(field) or ""
            cands = dict(answers.get(pid_native, {}))
            doctor_text = s.get("raw_anwser") or s.get("raw_answer")
            if doctor_text and not (doctor == "exclude" and not source_order):
                cands["doctor"] = doctor_text
            if not source_order:  # every ranked response needs a score (the doctor goes on top)
                for m in sorted(cands):
                    if m != "doctor" and m not in scores.get(pid_native, {}):
                        report["missing_scores"].append({"set": set_name, "model": m, "id": pid_native})
                        del cands[m]
            if len(cands) < 2:
                report["missing_answers"].append({"set": set_name, "id": pid_native, "responses": len(cands)})
                continue
            prompt_id = f"disc-{set_name}-{pid_native}"
            ordered = [m for m in order if m in cands] + sorted(m for m in cands if m not in order)
            ids, taken = {}, set()
            for m in ordered:
                ids[m] = response_id(seed, prompt_id, m, taken)
                taken.add(ids[m])
            sc = {ids[m]: scores[pid_native][m] for m in ordered if m in scores.get(pid_native, {})}
            if source_order:
                ranking = [[ids[m]] for m in ordered]
            else:
                top = [[ids["doctor"]]] if "doctor" in cands else []
                by_total: dict[float, list[str]] = defaultdict(list)
                for m in ordered:
                    if m != "doctor":
                        by_total[scores[pid_native][m]["total"]].append(ids[m])
                ranking = top + [sorted(by_total[t]) for t in sorted(by_total, reverse=True)]
            rows.append({
                "prompt_id": prompt_id, "prompt": prompt,
                "responses": [{"response_id": ids[m], "text": cands[m], "model": m} for m in ordered],
                "ranking": ranking, "annotator": "gpt-4-judge" if not source_order else "source-order",
                "batch": f"import:disc-medllm-eval:{method}", "scores": json.dumps(sc, ensure_ascii=False) if sc else "",
                "method": method, "seed": task_seed(seed, prompt_id), "order": [ids[m] for m in ordered],
                "source": f"disc-medllm-eval/{set_name}",
                "department": str(s.get("department") or (s.get("dataset_info") or {}).get("department") or ""),
            })
            n_set += 1
        report["sets"][set_name] = {"samples": len(samples), "prompts": n_set}
    report["prompts"] = len(rows)
    report["tie_groups"] = sum(len(g) > 1 for r in rows for g in r["ranking"])
    return pa.Table.from_pylist(rows, schema=RANKINGS_SCHEMA), report


def read_medicalgpt_reward(raw: str | Path, path: str = MEDICALGPT_REWARD) -> tuple[pa.Table, dict]:
    """100 {question, response_chosen, response_rejected} -> 2-way rankings (chosen first)."""
    p = Path(raw) / path
    if not p.is_file():
        raise CumedError(f"{p} not found; pass --raw (default ../shared/data/raw)")
    text = p.read_text(encoding="utf-8")
    try:
        records = json.loads(text)
        records = records if isinstance(records, list) else [records]
    except json.JSONDecodeError:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    rows, problems = [], []
    for n, rec in enumerate(records):
        q, c, r = rec.get("question"), rec.get("response_chosen"), rec.get("response_rejected")
        if not q or not c or not r or c == r:
            problems.append({"index": n, "problem": "missing question/chosen/rejected or chosen == rejected"})
            continue
        pid = "medicalgpt-rw-" + hashlib.sha1(f"{q}\x1f{c}\x1f{r}".encode()).hexdigest()[:12]
        ic = response_id("medicalgpt", pid, "chosen")
        ir = response_id("medicalgpt", pid, "rejected", {ic})
        rows.append({"prompt_id": pid, "prompt": q,
                     "responses": [{"response_id": ic, "text": c, "model": "medicalgpt:chosen"},
                                   {"response_id": ir, "text": r, "model": "medicalgpt:rejected"}],
                     "ranking": [[ic], [ir]], "annotator": "dataset", "batch": "import:medicalgpt-reward",
                     "scores": "", "method": "dataset_pairs", "seed": 0, "order": [ic, ir],
                     "source": "medicalgpt-reward", "department": ""})
    seen, dups = set(), 0
    uniq = []
    for row in rows:
        if row["prompt_id"] in seen:
            dups += 1
            continue
        seen.add(row["prompt_id"])
        uniq.append(row)
    report = {"records": len(records), "prompts": len(uniq), "exact_duplicates": dups, "problems": problems,
              "inputs": [{"path": path, "sha256": sha256_file(p)}]}
    return pa.Table.from_pylist(uniq, schema=RANKINGS_SCHEMA), report
