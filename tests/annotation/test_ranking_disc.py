"""Real rankings: DISC-MedLLM eval (313 prompts, GPT-4 scores) and MedicalGPT reward pairs."""

from __future__ import annotations

import json

from annotation.ranking.build import build_preferences_from_disc, import_medicalgpt
from annotation.ranking.importers import parse_scores, read_disc
from cumed.store import Store


def test_parse_scores_free_text():
    assert parse_scores("Proactivity: 4\nAccuracy: 5\nHelpfulness: 5\nLinguistic Quality: 3") == {
        "Proactivity": 4.0, "Accuracy": 5.0, "Helpfulness": 5.0, "Linguistic Quality": 3.0}
    assert parse_scores("**Proactivity**: 4\naccuracy：5\nHelpfulness: 5\nLinguistic  quality: 3")["Accuracy"] == 5.0
    assert parse_scores("Proactivity: 4\nAccuracy: five") is None and parse_scores(None) is None


def test_disc_import_313_prompts_every_score_parsed(raw_root):
    table, rep = read_disc(raw_root)
    assert table.num_rows == 313 and rep["sets"] == {
        "cmd": {"samples": 120, "prompts": 120}, "cmid": {"samples": 120, "prompts": 120},
        "cmb-clin": {"samples": 73, "prompts": 73}}
    assert rep["unparsable_scores"] == [] and rep["missing_scores"] == []  # else listed by id
    assert {d["id"] for d in rep["dialogues_without_prompt"]} == {"0-33275"}  # the 121st CMD dialogue
    rows = table.to_pylist()
    cmd = [r for r in rows if r["prompt_id"].startswith("disc-cmd-")]
    assert all(any(x["model"] == "doctor" for x in r["responses"]) for r in cmd)  # raw_anwser
    for r in rows:
        flat = [i for g in r["ranking"] for i in g]
        assert sorted(flat) == sorted(x["response_id"] for x in r["responses"])
        sc = json.loads(r["scores"])
        totals = [max(sc[i]["total"] for i in g) for g in r["ranking"] if g[0] in sc]
        assert totals == sorted(totals, reverse=True) and len(set(totals)) == len(totals)  # ties = one group
    assert rep["tie_groups"] > 0


def test_disc_source_order_and_pairs(raw_root, tmp_path):
    st = Store(tmp_path / "s")
    rref, pref = build_preferences_from_disc(raw_root, st, source_order=True)
    r, p = st.get(rref), st.get(pref)
    assert r.manifest["lineage"]["ranking_method"] == "source_order" and p.manifest["lineage"]["ranking_method"] == "source_order"
    first = next(x for x in r.to_arrow().to_pylist() if x["prompt_id"].startswith("disc-cmd-"))
    models = {x["response_id"]: x["model"] for x in first["responses"]}
    assert models[first["ranking"][0][0]] == "doctor" and all(len(g) == 1 for g in first["ranking"])
    rows = p.to_arrow().to_pylist()
    assert len(rows) == sum(len(x["responses"]) - 1 for x in r.to_arrow().to_pylist())
    splits = {}
    for row in rows:
        assert splits.setdefault(row["prompt_id"], row["split"]) == row["split"]
    n = {s: list(splits.values()).count(s) for s in ("train", "validation", "test")}
    assert n == {"train": 313 - 2 * 16, "validation": 16, "test": 16}


def test_medicalgpt_reward_pairs(raw_root, tmp_path):
    st = Store(tmp_path / "s")
    dv, rep = import_medicalgpt(raw_root, st)
    assert dv.rows + rep["exact_duplicates"] == 100 and not rep["problems"]
    row = dv.to_arrow().to_pylist()[0]
    assert len(row["ranking"]) == 2 and row["responses"][0]["model"] == "medicalgpt:chosen"
