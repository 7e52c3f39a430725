"""The SFT build on the real data (accounting, decontamination, splits) and on corrupted input."""

import json
from collections import Counter

import pytest
import yaml

from curation.dedup import find_duplicates
from cumed.errors import CumedError
from cumed.eval_sets import load_eval_set
from curation.sft.build import build_conversations
from curation.sft.roles import dialogue_text, user_text
from curation.steps.decontaminate import Decontaminate


def test_every_dialogue_kept_or_removed_with_reason(all_departments_build):
    dv, stats = all_departments_build
    assert dv.kind == "conversations"
    removed = dv.to_arrow("removed").to_pylist()
    assert stats["read"] == dv.rows + dv.removed_rows == 14964
    for name, s in stats["sources"].items():
        assert s["read"] == s["kept"] + s["removed"], name
    assert all(r["removed_by"] and r["reason"] for r in removed)
    # the text-block file is the CSV again: its dialogues are exact duplicates of CSV rows
    blocks = stats["sources"]["toyhom_im_blocks"]["removed_by_reason"]
    assert blocks.get("dedup/exact_duplicate", 0) > 4000
    kept_ids = set(dv.to_arrow(columns=["id"]).column("id").to_pylist())
    dups = [r for r in removed if r["removed_by"] == "dedup"]
    assert dups and all(r["duplicate_of"] in kept_ids for r in dups)
    assert stats["sources"]["huatuo_liver_cancer"]["turns"] > 2 * stats["sources"]["huatuo_liver_cancer"]["kept"]
    assert set(dv.to_arrow(columns=["split"]).column("split").to_pylist()) == {"train", "validation", "test"}


def test_no_evaluation_item_or_near_copy_in_any_split(all_departments_build, raw_root):
    dv, stats = all_departments_build
    rows = dv.to_arrow(columns=["id", "messages"]).to_pylist()
    texts = [dialogue_text(r["messages"]) for r in rows]
    step = Decontaminate(raw=raw_root)
    assert not [t for t in step.contaminating_items(texts) if t]
    sets = ("huatuo26m_test", "cmb_clin", "disc_eval")
    ref = [(f"{n}:{i}", t) for n in sets for i, t in load_eval_set(n, raw_root)]
    refs = {r[0] for r in ref}
    near = [d for d in find_duplicates(list(zip([r["id"] for r in rows], texts)), reference=ref, threshold=0.75)
            if d.duplicate_of in refs]
    assert not near
    assert stats["removed_by_reason"].get("decontaminate/eval_overlap", 0) > 0  # there were some to remove


def test_no_near_duplicate_cluster_spans_two_splits(all_departments_build):
    dv, stats = all_departments_build
    rows = dv.to_arrow(columns=["id", "messages", "split", "metadata"]).to_pylist()
    split = {r["id"]: r["split"] for r in rows}
    decisions = find_duplicates([(r["id"], user_text(r["messages"])) for r in rows], threshold=0.6)
    assert len(decisions) > 20  # the real data has prompt near-copies (same question, other answers)
    assert all(split[d.id] == split[d.duplicate_of] for d in decisions)
    cluster = {r["id"]: json.loads(r["metadata"])["cluster"] for r in rows}
    by_cluster = {}
    for i, c in cluster.items():
        by_cluster.setdefault(c, set()).add(split[i])
    assert all(len(s) == 1 for s in by_cluster.values())
    assert stats["splits"]["multi_member_clusters"] > 0


def test_default_build_selects_urology_andrology(default_build):
    dv, stats = default_build
    dep = stats["department"]
    assert dep["select"] == "urology_andrology"
    assert dep["selected_by"]["source_field"] > 40 and dep["selected_by"]["lexicon"] > 100
    assert dep["selected_by"]["classifier"] == 0
    assert dep["union"] == dep["kept"] == sum(v for k, v in dep["combinations"].items() if k != "none")
    assert "source_field&lexicon" in dep["overlap"]
    assert stats["removed_by_reason"]["department/not_selected"] > 10000
    meta = [json.loads(m) for m in dv.to_arrow(columns=["metadata"]).column("metadata").to_pylist()]
    assert all(m.get("department_methods") for m in meta)
    assert "Department selection" in dv.card()


# ------------------------------------------------------------------ corrupted input
def _write_recipe(tmp_path, sources, steps=None):
    data = {"name": "sft-broken", "kind": "conversations", "sources": sources,
            "steps": steps or {"normalize": {}, "dedup": {}, "splits": {}}}
    p = tmp_path / "sft-broken.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return p


def test_corrupted_input_is_counted_not_crashed(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    good = [{"history": [["头疼怎么办", "多休息"]], "instruction": "还是疼", "input": "", "output": "去医院", "id": "a"},
            {"history": [], "instruction": "尿频是怎么回事", "input": "", "output": "可能是尿路感染", "id": "b"}]
    text = json.dumps(good, ensure_ascii=False)
    (raw / "truncated.json").write_text(text[: text.rfind("{") + 30], encoding="utf-8")  # cut inside record 2
    (raw / "bad.csv").write_bytes(
        "ask,answer\n发烧三天了,多喝水\n只有问题没有答案\n".encode("utf-8") + "咳嗽,吃药\n".encode("gb18030"))
    (raw / "users.jsonl").write_text(
        json.dumps({"conversations": [{"from": "human", "value": "q1"}, {"from": "human", "value": "q2"}]}) + "\n"
        + json.dumps({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}) + "\n"
        + json.dumps({"conversations": [{"from": "narrator", "value": "x"}, {"from": "gpt", "value": "a"}]}) + "\n"
        + '{"conversations": [{"from": "human", "val\n', encoding="utf-8")
    recipe = _write_recipe(tmp_path, [
        {"name": "trunc", "reader": "conv_json", "path": "truncated.json", "category": "dialogue",
         "options": {"format": "json", "id_field": "id", "templates": [
             {"when": "history", "template": "{history}[[user]]{instruction}[[assistant]]{output}",
              "each": {"history": "[[user]]{0}[[assistant]]{1}"}}]}},
        {"name": "badcsv", "reader": "conv_csv", "path": "bad.csv", "category": "qa",
         "options": {"template": "[[user]]{ask}[[assistant]]{answer}"}},
        {"name": "users", "reader": "conv_json", "path": "users.jsonl", "category": "qa",
         "options": {"format": "jsonl", "template": "{conversations}", "each": {"conversations": "[[{from}]]{value}"}}},
    ])
    dv, stats = build_conversations(recipe, raw, tmp_path / "store", progress=False)
    s = stats["sources"]
    assert (s["trunc"]["read"], s["trunc"]["kept"]) == (2, 1)
    assert s["trunc"]["removed_by_reason"] == {"reader/read_error": 1}
    assert (s["badcsv"]["read"], s["badcsv"]["kept"]) == (3, 1)
    assert s["badcsv"]["removed_by_reason"] == {"reader/read_error": 2}
    assert (s["users"]["read"], s["users"]["kept"]) == (4, 1)
    assert s["users"]["removed_by_reason"] == {"reader/read_error": 1, "roles/not_alternating": 1, "roles/unknown_role": 1}
    reasons = {r["source"] + ":" + r["reason"].split(":")[0]: r["reason"] for r in dv.to_arrow("removed").to_pylist()}
    assert "truncated.json" in reasons["trunc:read_error"] and "line" in reasons["trunc:read_error"]
    csv_errors = [r["reason"] for r in dv.to_arrow("removed").to_pylist() if r["source"] == "badcsv"]
    assert any("missing field 'answer'" in r and "bad.csv line 3" in r for r in csv_errors)
    assert any("not valid utf-8" in r and "gb18030" in r for r in csv_errors)
    assert "turns 1 and 2 are both user" in reasons["users:not_alternating"]
    assert "'narrator'" in reasons["users:unknown_role"]
    assert "users.jsonl line 4" in reasons["users:read_error"]
    # nothing was "fixed": the removed rows keep the turns as the source wrote them
    only_users = [r for r in dv.to_arrow("removed").to_pylist() if r["reason"].startswith("not_alternating")][0]
    assert [m["role"] for m in only_users["messages"]] == ["user", "user"]


def test_wrong_kind_and_missing_template_column_are_clear_errors(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "x.csv").write_text("question,reply\n头疼,休息\n", encoding="utf-8")
    recipe = _write_recipe(tmp_path, [{"name": "x", "reader": "conv_csv", "path": "x.csv", "category": "qa",
                                       "options": {"template": "[[user]]{ask}[[assistant]]{answer}"}}])
    with pytest.raises(CumedError, match="no column 'ask'"):
        build_conversations(recipe, raw, tmp_path / "store", progress=False)
    data = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    data["kind"] = "documents"
    recipe.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(CumedError, match="kind: conversations"):
        build_conversations(recipe, raw, tmp_path / "store", progress=False)


def test_pack_option_concatenates_single_turn_pairs(tmp_path):
    from curation.sft.pack import pack_single_turn

    def row(i, n_pairs=1, split="train"):
        msgs = []
        for k in range(n_pairs):
            msgs += [{"role": "user", "content": f"问题{i}-{k}"}, {"role": "assistant", "content": "回答" * 20}]
        return {"id": f"r{i:02d}", "messages": msgs, "source": "s", "department": "", "n_turns": len(msgs),
                "split": split, "metadata": "{}"}

    rows = [row(i) for i in range(10)] + [row(10, n_pairs=3)] + [row(11, split="test")]
    out, st = pack_single_turn(rows, max_tokens=100, boundary="<|qa_boundary|>")
    multi = [r for r in out if r["id"] == "r10"]
    assert multi and multi[0]["n_turns"] == 6  # multi-turn history kept whole
    packed = [r for r in out if json.loads(r["metadata"]).get("packed")]
    assert packed and all(r["split"] == "train" for r in packed)
    members = sum(len(json.loads(r["metadata"])["packed_ids"]) for r in packed)
    assert members + (len(out) - len(packed)) == len(rows)
    p = packed[0]["messages"]
    assert [m["role"] for m in p] == ["user", "assistant"] * (len(p) // 2)
    assert p[2]["content"].startswith("<|qa_boundary|>") and not p[0]["content"].startswith("<|qa_boundary|>")
    assert Counter(r["split"] for r in out)["test"] == 1


# ------------------------------------------------------------------ side inputs in the lineage
CMB = "DISC_MedLLM_eval/eval/samples/CMB-cases.json"
TRIPLES = "CMeKG_pycmekg/cmekg_triples.tsv"
UTI = ("尿路感染反复发作怎么办，最近又尿频尿急了",
       "建议做尿常规和尿培养，在医生指导下使用抗生素，多喝水，注意休息，避免憋尿，必要时复查泌尿系统超声。")
PROSTATE = ("慢性前列腺炎能根治吗，会阴部一直坠胀", "慢性前列腺炎需要综合治疗，规律作息，避免久坐，配合药物治疗。")


def _side_raw(root):
    """A conversations CSV, a copy of CMB-Clin (so it can be changed) and a one-line CMeKG."""
    import shutil

    from tests.conftest import RAW

    root.mkdir()
    (root / "qa.csv").write_text("ask,answer\n" + "".join(f"{q},{a}\n" for q, a in (UTI, PROSTATE)), encoding="utf-8")
    (root / CMB).parent.mkdir(parents=True)
    shutil.copyfile(RAW / CMB, root / CMB)
    (root / TRIPLES).parent.mkdir(parents=True)
    (root / TRIPLES).write_text("subject\tpredicate\tobject\n尿路感染\t就诊科室\t泌尿外科\n", encoding="utf-8")
    return root


def _side_recipe(tmp_path):
    steps = {"normalize": {}, "department": {"select": "urology_andrology", "methods": ["lexicon"]},
             "decontaminate": {"eval_sets": ["cmb_clin"]}, "dedup": {}, "splits": {}}
    return _write_recipe(tmp_path, [{"name": "qa", "reader": "conv_csv", "path": "qa.csv", "category": "qa",
                                     "options": {"template": "[[user]]{ask}[[assistant]]{answer}"}}], steps)


def _users(dv) -> list[str]:
    return sorted(r["messages"][0]["content"] for r in dv.to_arrow(columns=["messages"]).to_pylist())


def test_lineage_names_the_eval_sets_and_lexicon_read_and_changes_with_them(tmp_path, monkeypatch):
    """The conversations build decontaminates and selects by a CMeKG lexicon: its lineage records
    both files' sha256 and the package versions, and its config hash changes with any of them."""
    import importlib.metadata

    from cumed.hashing import sha256_file
    from cumed.store.manifest import LINEAGE_KEYS

    monkeypatch.setenv("CUMED_CACHE", str(tmp_path / "cache"))
    raw, recipe = _side_raw(tmp_path / "raw"), _side_recipe(tmp_path)
    first, _ = build_conversations(recipe, raw, tmp_path / "store", progress=False)
    assert _users(first) == [UTI[0]]
    lineage = first.manifest["lineage"]
    assert tuple(lineage)[: len(LINEAGE_KEYS)] == LINEAGE_KEYS
    assert lineage["side_inputs"] == [
        {"role": "eval_set", "name": "cmb_clin", "path": CMB, "sha256": sha256_file(raw / CMB)},
        {"role": "lexicon", "name": "department_lexicon", "path": TRIPLES, "sha256": sha256_file(raw / TRIPLES)}]
    assert lineage["dependencies"]["datatrove"] == importlib.metadata.version("datatrove")
    assert {"pyarrow", "opencc", "opencc-dictionaries", "numpy", "ahocorasick"} <= set(lineage["dependencies"])
    hashes = {lineage["config_hash"]}

    # a lexicon term added: the prostate dialogue is selected, and the lineage says which file did it
    (raw / TRIPLES).write_text((raw / TRIPLES).read_text(encoding="utf-8") + "慢性前列腺炎\t就诊科室\t男科\n",
                               encoding="utf-8")
    second, _ = build_conversations(recipe, raw, tmp_path / "store", progress=False)
    assert _users(second) == sorted([UTI[0], PROSTATE[0]])
    assert second.manifest["lineage"]["side_inputs"][1]["sha256"] == sha256_file(raw / TRIPLES)
    hashes.add(second.manifest["lineage"]["config_hash"])

    # the UTI answer becomes an evaluation item: its dialogue is removed, the new file is named
    items = json.loads((raw / CMB).read_text(encoding="utf-8"))
    items.append({"id": "planted", "case": UTI[1], "first_question": ""})
    (raw / CMB).write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    third, _ = build_conversations(recipe, raw, tmp_path / "store", progress=False)
    assert _users(third) == [PROSTATE[0]]
    [removed] = [r for r in third.to_arrow("removed").to_pylist() if r["removed_by"] == "decontaminate"]
    assert removed["reason"] == "eval_overlap: cmb_clin:planted"
    assert third.manifest["lineage"]["side_inputs"][0]["sha256"] == sha256_file(raw / CMB)
    hashes.add(third.manifest["lineage"]["config_hash"])

    # another package version: the same rows, another config hash
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda d: "0.0.0+other" if d == "pyarrow" else real(d))
    fourth, _ = build_conversations(recipe, raw, tmp_path / "other-store", progress=False)
    assert fourth.content_hash == third.content_hash
    assert fourth.manifest["lineage"]["dependencies"]["pyarrow"] == "0.0.0+other"
    hashes.add(fourth.manifest["lineage"]["config_hash"])
    assert len(hashes) == 4
