"""``cumed lineage`` on the demo's RS checkpoint: raw files (sha256) -> versions -> checkpoints.

The versions are built from real raw files through the real builders (small recipes: two
documents sources, two dialogue sources, the MedicalGPT reward pairs), so every ``inputs`` leaf
is a file whose sha256 the test recomputes; the chain is ``training.demo.demo_training`` for two
steps per stage (~25 s on one CPU core).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cumed.hashing import checkpoint_sha256, sha256_file
from cumed.provenance import summary, trace, walk
from cumed.store import Store

REPO = Path(__file__).resolve().parents[2]

DOCS_RECIPE = {
    "name": "lin-pretrain", "kind": "documents", "shards": 1,
    "sources": [
        {"name": "medicalgpt_rag_corpus", "reader": "json", "path": "MedicalGPT_shibing624/data/rag/medical_corpus.txt",
         "category": "qa", "license": "Apache-2.0", "options": {"format": "jsonl", "template": "{问}\n{答}"}},
        {"name": "sjtu_book_data", "reader": "json", "path": "MedicalGPT_zh_SJTU/data/book_data.json",
         "category": "textbook", "license": "unspecified", "options": {"format": "json"}},
    ],
    "steps": {"normalize": {}, "filters": {"min_length": {}}, "dedup": {"threshold": 0.75}},
}
SFT_RECIPE = {  # urology/andrology dialogues of the two Toyhom files: 77 short dialogues
    "name": "lin-sft", "kind": "conversations",
    "sources": [
        {"name": "toyhom_csv", "reader": "conv_csv", "path": "Toyhom_Chinese_medical_dialogue/样例_内科5000-6000.csv",
         "category": "qa", "license": "MIT",
         "options": {"encoding": "gb18030", "template": "[[user]]{ask}[[assistant]]{answer}",
                     "department_field": "department", "title_field": "title"}},
        {"name": "toyhom_im_blocks", "reader": "conv_text_blocks",
         "path": "Toyhom_Chinese_medical_dialogue/Data_数据/IM_内科/内科.txt",
         "category": "qa", "department": "内科", "license": "MIT",
         "options": {"encoding": "gb18030", "lines": ["title,ask", "answer"], "template": "[[user]]{ask}[[assistant]]{answer}"}},
    ],
    "steps": {"normalize": {}, "department": {"select": "urology_andrology"},
              "splits": {"validation": 0.1, "test": 0.0, "seed": "lin"}},
}


def cumed(*args) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-c", "from cumed.cli import main; main()", *args], capture_output=True,
                       text=True, timeout=300, cwd=REPO, env={**os.environ, "COLUMNS": "250"})
    assert p.returncode == 0, (p.stdout, p.stderr)
    return p


@pytest.fixture(scope="module")
def chain(raw_root, tmp_path_factory):
    from annotation.ranking.build import import_medicalgpt, publish_pairs
    from cumed.cli.build_cmd import build_recipe
    from training.demo import demo_training

    tmp = tmp_path_factory.mktemp("lineage")
    st = Store(tmp / "store")
    versions = {}
    for recipe in (DOCS_RECIPE, SFT_RECIPE):
        path = tmp / f"{recipe['name']}.yaml"
        path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
        dv, _ = build_recipe(path, raw_root, st, workers=1, work_root=tmp / "work", progress=False)
        versions[recipe["kind"]] = dv.ref
    rankings, _ = import_medicalgpt(raw_root, st, name="lin-rankings")
    prefs, _ = publish_pairs(st, rankings.ref, name="lin-rm")
    versions.update(rankings=rankings.ref, preferences=prefs.ref)
    res = demo_training(st, versions["documents"], versions["conversations"], prefs.ref, steps=2,
                        runs_dir=tmp / "runs", vocab_size=400, max_documents=50)
    return st, versions, res


def by_id(tree: dict, kind: str) -> dict[str, dict]:
    """The expanded node (not a "(see above)" repeat) of each id of a kind."""
    return {n["id"]: n for n in walk(tree) if n["kind"] == kind and not n.get("see_above")}


def test_every_stage_writes_lineage_json(chain):
    st, versions, res = chain
    for stage, want in (("pretrain", None), ("sft", "pretrain"), ("rm", "sft"), ("rs", "sft")):
        lin = json.loads((Path(res[stage]["final"]) / "lineage.json").read_text(encoding="utf-8"))
        assert lin["schema"] == 1 and lin["stage"] == stage and lin["engine"] == "cumed"
        assert lin["code_sha256"] and lin["config"]["block_size"] == res["block_size"]
        assert lin["hardware"]["world_size"] == 1 and lin["hardware"]["torch"]
        assert lin["tokenizer"]["sha256"] and Path(lin["tokenizer"]["path"]).is_dir()
        train = lin["datasets"]["train"]
        assert train["content_hash"] == st.get(train["ref"]).content_hash
        assert Path(train["store"]) == Path(st.root).resolve()
        if want is None:
            assert lin["parent"] is None  # a tiny model built from the config
        else:  # the sha256 of the parent as it was when this stage started
            assert lin["parent"] == {"path": str(Path(res[want]["final"]).resolve()),
                                     "sha256": checkpoint_sha256(res[want]["final"])}
    rs = json.loads((Path(res["rs"]["final"]) / "lineage.json").read_text(encoding="utf-8"))
    assert rs["datasets"]["train"]["ref"] == res["rs"]["published"]
    assert rs["datasets"]["prompts"]["ref"] == versions["conversations"]
    assert rs["checkpoints"]["reward"]["sha256"] == checkpoint_sha256(res["rm"]["final"])


def test_lineage_json_is_not_part_of_the_checkpoint_hash(chain, tmp_path):
    _, _, res = chain
    copy = tmp_path / "ckpt"
    shutil.copytree(res["sft"]["final"], copy)
    before = checkpoint_sha256(copy)
    (copy / "lineage.json").write_text("{}")
    assert checkpoint_sha256(copy) == before


def test_cli_lineage_of_the_rs_checkpoint_reaches_the_raw_files(chain, raw_root):
    st, versions, res = chain
    p = cumed("lineage", res["rs"]["final"], "--store", str(st.root), "--json")
    out = json.loads(p.stdout)
    tree = out["root"]
    assert tree["kind"] == "checkpoint" and tree["stage"] == "rs" and tree["status"] == "ok"
    assert not out["summary"]["problems"], out["summary"]

    # every checkpoint between, with its sha256 recomputed now
    ckpts = by_id(tree, "checkpoint")
    for stage in ("pretrain", "sft", "rm", "rs"):
        path = str(Path(res[stage]["final"]).resolve())
        assert path in ckpts, (stage, sorted(ckpts))
        assert ckpts[path]["stage"] == stage and ckpts[path]["sha256"] == checkpoint_sha256(path)

    # every version between, with its content hash
    datasets = by_id(tree, "dataset")
    for ref in (*versions.values(), res["rs"]["published"]):
        assert ref in datasets, (ref, sorted(datasets))
        assert datasets[ref]["content_hash"] == st.get(ref).content_hash

    # the RS version names the checkpoints it was sampled and scored with
    rs_version = datasets[res["rs"]["published"]]
    named = {c["role"]: c["id"] for c in rs_version["children"] if c["kind"] == "checkpoint"}
    assert named == {"policy": str(Path(res["sft"]["final"]).resolve()), "reward": str(Path(res["rm"]["final"]).resolve())}

    # the leaves: every raw file each version read, with the sha256 of the file on disk
    raws = [n for n in walk(tree) if n["kind"] == "raw"]
    assert all(not n["children"] for n in raws)
    want = {f["path"] for ref in versions.values() for f in st.get(ref).manifest["lineage"]["inputs"]}
    assert {n["id"] for n in raws} == want and len(want) == 5
    for n in raws:
        assert n["sha256"] == sha256_file(raw_root / n["id"]), n["id"]

    # a node reached twice is expanded once (the SFT checkpoint: RS parent, policy, RM parent)
    sft_path = str(Path(res["sft"]["final"]).resolve())
    assert len([n for n in walk(tree) if n["id"] == sft_path]) >= 3
    assert len([n for n in walk(tree) if n["id"] == sft_path and not n.get("see_above")]) == 1


def test_cli_tree_prints_the_chain(chain):
    st, versions, res = chain
    text = cumed("lineage", res["rs"]["final"], "--store", str(st.root)).stdout
    for word in ("stage=rs", "stage=sft", "stage=pretrain", "stage=rm", res["rs"]["published"], versions["documents"],
                 "(see above)", "MedicalGPT_zh_SJTU/data/book_data.json"):
        assert word in text, (word, text)
    assert sha256_file(Path(os.environ.get("CUMED_RAW") or REPO.parent / "shared" / "data" / "raw")
                       / "MedicalGPT_zh_SJTU/data/book_data.json") in text


def test_a_dataset_ref_traces_too(chain):
    st, versions, res = chain
    out = json.loads(cumed("lineage", res["rs"]["published"], "--store", str(st.root), "--json").stdout)
    assert out["root"]["kind"] == "dataset" and out["root"]["id"] == res["rs"]["published"]
    assert versions["documents"] in by_id(out["root"], "dataset")  # via the policy checkpoint's parents


def test_tampered_and_missing_parents_are_reported(chain, tmp_path):
    st, _, res = chain
    runs = tmp_path / "runs"
    for stage in ("pretrain", "sft", "rm", "rs"):  # a copy of the chain, its lineage pointing at the copy
        shutil.copytree(Path(res[stage]["final"]), runs / stage)
    for stage in ("sft", "rm", "rs"):
        f = runs / stage / "lineage.json"
        text = f.read_text(encoding="utf-8")
        for other in ("pretrain", "sft", "rm"):
            text = text.replace(str(Path(res[other]["final"]).resolve()), str(runs / other))
        f.write_text(text, encoding="utf-8")
    cfg = json.loads((runs / "pretrain" / "config.json").read_text())
    (runs / "pretrain" / "config.json").write_text(json.dumps({**cfg, "tampered": True}))  # pretrain changed after SFT
    shutil.rmtree(runs / "rm")  # the reward model is gone

    tree = trace(runs / "rs", st)
    nodes = by_id(tree, "checkpoint")
    assert nodes[str((runs / "pretrain").resolve())]["status"] == "changed"
    assert nodes[str(runs / "rm")]["status"] == "missing"
    assert nodes[str((runs / "sft").resolve())]["status"] == "ok"
    problems = {(p["status"], p["kind"]) for p in summary(tree)["problems"]}
    assert problems == {("changed", "checkpoint"), ("missing", "checkpoint")}
    text = cumed("lineage", str(runs / "rs"), "--store", str(st.root)).stdout
    assert "CHANGED" in text and "MISSING" in text


def test_a_missing_target_is_a_node_not_a_crash(tmp_path):
    st = Store(tmp_path / "store")
    tree = trace("nothing@3", st)
    assert tree["status"] == "missing" and "nothing" in tree["note"]
    gone = trace(tmp_path / "runs" / "sft-x" / "final", st)
    assert gone["kind"] == "checkpoint" and gone["status"] == "missing"
