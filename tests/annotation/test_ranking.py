"""Ranking annotation: push -> simulated Label Studio export -> pull -> pairs, validation, splits."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from annotation.ranking.config import label_config, result_items
from annotation.ranking.importers import RANKINGS_SCHEMA
from annotation.ranking.pairs import assign_splits, build_pairs, mix_general, prompt_clusters, ranking_pairs
from annotation.ranking.queue import pull, push
from annotation.ranking.validate import kendall_tau_b, pairwise_agreement
from annotation.review.file_backend import FileBackend
from cumed.store import Store

MODELS = ["doctor", "gpt-4", "gpt-3.5-turbo", "deepseek"]


def candidates_table(n=6):
    rows = []
    for i in range(n):
        pid = f"p{i}"
        rows.append({"prompt_id": pid, "prompt": f"问题{i}：前列腺炎第{i}种情况怎么治疗？" * 3,
                     "responses": [{"response_id": f"x{j}", "text": f"第{j}个回答 {i}", "model": m} for j, m in enumerate(MODELS)],
                     "ranking": [[f"x{j}"] for j in range(4)], "annotator": "import", "batch": "import",
                     "scores": "", "method": "source_order", "seed": 0, "order": [f"x{j}" for j in range(4)],
                     "source": "test", "department": ""})
    return pa.Table.from_pylist(rows, schema=RANKINGS_SCHEMA)


@pytest.fixture()
def store(tmp_path):
    st = Store(tmp_path / "store")
    st.publish("cands", candidates_table(), kind="rankings")
    return st


def export(tasks, rankings_by_annotator, start=1):
    """Label Studio JSON export: rankings_by_annotator = {annotator: {prompt_id: [ids best first]}}."""
    out, aid = [], start
    for k, t in enumerate(tasks):
        anns = []
        for who, per in rankings_by_annotator.items():
            if t["data"]["prompt_id"] in per:
                anns.append({"id": aid, "completed_by": {"email": who}, "was_cancelled": False,
                             "result": result_items(per[t["data"]["prompt_id"]])})
                aid += 1
        out.append({"id": 100 + k, "data": t["data"], "annotations": anns, "total_annotations": len(anns)})
    return out


def model_order(tasks_path, batch_json):
    """Ids in the true model order (doctor > gpt-4 > gpt-3.5 > deepseek) per prompt, from batch state."""
    info = json.loads(open(batch_json, encoding="utf-8").read())
    return {pid: [next(r["response_id"] for r in rec["responses"] if r["model"] == m) for m in MODELS]
            for pid, rec in info["prompts"].items()}


def test_push_hides_models_and_shuffles(store):
    res = push(store, "cands@1", 4, FileBackend, k=4, seed=7)
    tasks = json.load(open(res["tasks_file"], encoding="utf-8"))
    assert len(tasks) == 4
    text = json.dumps(tasks, ensure_ascii=False)
    for m in ("gpt-4", "deepseek", "\"model\""):
        assert m not in text
    ids = [i["id"] for t in tasks for i in t["data"]["responses"]]
    assert all(len(i) == 7 and i[0] == "r" for i in ids)
    cfg = open(res["config_file"], encoding="utf-8").read()
    assert '<List name="responses" value="$responses"' in cfg and '<Ranker name="rank" toName="responses"' in cfg
    assert "安全性 Safety" in tasks[0]["data"]["rubric"] and "Rating" in cfg
    # same seed, same ids and order (the display order is recorded in batch state)
    batch = store.root / "_ranking" / "cands" / res["batch"] / "batch.json"
    info = json.loads(batch.read_text(encoding="utf-8"))
    for t in tasks:
        assert [i["id"] for i in t["data"]["responses"]] == info["prompts"][t["data"]["prompt_id"]]["order"]
    # a second push never queues the same prompts
    res2 = push(store, "cands@1", 10, FileBackend, k=4, seed=7)
    tasks2 = json.load(open(res2["tasks_file"], encoding="utf-8"))
    assert {t["data"]["prompt_id"] for t in tasks2}.isdisjoint({t["data"]["prompt_id"] for t in tasks})


def test_push_rank_pull_pairs_round_trip(store, tmp_path):
    res = push(store, "cands@1", 6, FileBackend, k=4, seed=1)
    tasks = json.load(open(res["tasks_file"], encoding="utf-8"))
    truth = model_order(res["tasks_file"], store.root / "_ranking" / "cands" / res["batch"] / "batch.json")
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export(tasks, {"a@x": truth}), ensure_ascii=False), encoding="utf-8")
    out = pull(store, res["batch"], FileBackend(tmp_path), str(path), publish="rk")
    assert out["rankings"] == 6 and not out["problems"] and not out["counts"]["mismatch"]
    dv = store.get(out["ref"])
    assert dv.kind == "rankings" and dv.rows == 6
    row = dv.to_arrow().to_pylist()[0]
    assert {r["model"] for r in row["responses"]} == set(MODELS)  # mapping kept in the dataset
    prefs, stats = build_pairs(dv.to_arrow(), cluster_threshold=None)
    rows = prefs.to_pylist()
    assert len(rows) == 6 * 3
    for r in rows:
        assert r["rejected_rank"] - r["chosen_rank"] == 1 and r["margin"] == 1.0
        assert MODELS.index(r["chosen_model"]) < MODELS.index(r["rejected_model"])
    allp, _ = build_pairs(dv.to_arrow(), mode="all", cluster_threshold=None)
    assert allp.num_rows == 6 * 6
    for r in allp.to_pylist():
        assert r["margin"] == r["rejected_rank"] - r["chosen_rank"] > 0
        assert MODELS.index(r["chosen_model"]) < MODELS.index(r["rejected_model"])
    # pulling the same export again adds nothing
    again = pull(store, res["batch"], FileBackend(tmp_path), str(path), publish="rk")
    assert again["new_rankings"] == 0 and store.get("rk").version == dv.version


def test_invalid_rankings_reported_and_skipped(store, tmp_path):
    res = push(store, "cands@1", 5, FileBackend, k=4, seed=2)
    tasks = json.load(open(res["tasks_file"], encoding="utf-8"))
    truth = model_order(res["tasks_file"], store.root / "_ranking" / "cands" / res["batch"] / "batch.json")
    pids = sorted(truth)
    bad = dict(truth)
    bad[pids[0]] = truth[pids[0]][:3]                                  # a response missing
    bad[pids[1]] = truth[pids[1]][:3] + [truth[pids[1]][0]]            # duplicated
    bad[pids[2]] = truth[pids[2]][:3] + ["rzzzzzz"]                    # unknown id
    exp = export(tasks, {"a@x": bad})
    exp[0]["total_annotations"] = 2                                    # LS says 2, export carries 1
    path = tmp_path / "export.json"
    path.write_text(json.dumps(exp), encoding="utf-8")
    out = pull(store, res["batch"], FileBackend(tmp_path), str(path), publish="rk")
    problems = {p["prompt_id"]: p["problem"] for p in out["problems"]}
    assert "not ranked" in problems[pids[0]] and "twice" in problems[pids[1]] and "unknown" in problems[pids[2]]
    assert all(p["task_id"] is not None for p in out["problems"])
    assert out["rankings"] == 2 and store.get("rk").rows == 2
    assert out["counts"]["mismatch"] and out["counts"]["mismatched_tasks"][0]["declared"] == 2


def test_ties_only_where_allowed(store, tmp_path):
    res = push(store, "cands@1", 2, FileBackend, k=4, seed=3)
    tasks = json.load(open(res["tasks_file"], encoding="utf-8"))
    exp = []
    for k, t in enumerate(tasks):
        ids = [i["id"] for i in t["data"]["responses"]]
        exp.append({"id": k, "data": t["data"], "annotations": [
            {"id": k + 1, "completed_by": 1, "result": result_items([[ids[0], ids[1]], [ids[2]], [ids[3]]], ties=True, k=4)}]})
    path = tmp_path / "e.json"
    path.write_text(json.dumps(exp), encoding="utf-8")
    out = pull(store, res["batch"], FileBackend(tmp_path), str(path), publish=None)
    assert len(out["problems"]) == 2 and "ties are not allowed" in out["problems"][0]["problem"]
    res2 = push(store, "cands@1", 2, FileBackend, k=4, seed=3, ties=True)
    assert "<Bucket" in open(res2["config_file"], encoding="utf-8").read()
    tasks = json.load(open(res2["tasks_file"], encoding="utf-8"))
    for t, e in zip(tasks, exp):
        ids = [i["id"] for i in t["data"]["responses"]]
        e["data"] = t["data"]
        e["annotations"][0]["result"] = result_items([[ids[0], ids[1]], [ids[2]], [ids[3]]], ties=True, k=4)
    path.write_text(json.dumps(exp), encoding="utf-8")
    out = pull(store, res2["batch"], FileBackend(tmp_path), str(path), publish="rk2")
    assert out["rankings"] == 2 and not out["problems"]
    prefs, _ = build_pairs(store.get("rk2").to_arrow(), cluster_threshold=None)
    # [[a, b], [c], [d]]: a>c, b>c, c>d; the tie gives no pair
    assert prefs.num_rows == 2 * 3
    assert set(prefs.column("chosen_rank").to_pylist()) == {1, 2}


def test_agreement_and_conflicts(store, tmp_path):
    res = push(store, "cands@1", 3, FileBackend, k=4, seed=4)
    tasks = json.load(open(res["tasks_file"], encoding="utf-8"))
    truth = model_order(res["tasks_file"], store.root / "_ranking" / "cands" / res["batch"] / "batch.json")
    pids = sorted(truth)
    other = dict(truth)
    other[pids[0]] = list(reversed(truth[pids[0]]))  # full disagreement on one prompt
    path = tmp_path / "e.json"
    path.write_text(json.dumps(export(tasks, {"a@x": truth, "b@x": other})), encoding="utf-8")
    out = pull(store, res["batch"], FileBackend(tmp_path), str(path), publish="rk")
    a = out["agreement"]
    assert a["prompts_multi"] == 3 and a["pairs"]["a@x|b@x"]["n"] == 3
    assert a["kendall_tau"] == pytest.approx((1 + 1 - 1) / 3)
    assert [c["prompt_id"] for c in a["conflicts"]] == [pids[0]]
    assert set(a["annotators"]) == {"a@x", "b@x"}
    prefs, stats = build_pairs(store.get("rk").to_arrow(), cluster_threshold=None)
    assert stats["prompts_merged_from_annotators"] == 3


def test_tau_and_pairwise_agreement():
    a = [["x"], ["y"], ["z"]]
    assert kendall_tau_b(a, a) == 1 and kendall_tau_b(a, a[::-1]) == -1
    assert pairwise_agreement(a, [["x"], ["z"], ["y"]]) == pytest.approx(2 / 3)


def test_pairs_from_ties_and_scores():
    assert ranking_pairs([["a"], ["b"], ["c"], ["d"]]) == [("a", "b", 1, 2), ("b", "c", 2, 3), ("c", "d", 3, 4)]
    assert len(ranking_pairs([["a"], ["b"], ["c"], ["d"]], "all")) == 6
    assert ranking_pairs([["a", "b"]]) == []
    t = candidates_table(1).to_pylist()
    t[0]["scores"] = json.dumps({"x0": {"total": 19}, "x1": {"total": 17}, "x2": {"total": 17.5}})
    prefs, _ = build_pairs(pa.Table.from_pylist(t, schema=RANKINGS_SCHEMA), cluster_threshold=None)
    m = {(r["chosen_id"], r["rejected_id"]): (r["margin"], r["margin_kind"]) for r in prefs.to_pylist()}
    assert m[("x0", "x1")] == (2.0, "score")          # score difference
    assert m[("x1", "x2")] == (1.0, "rank")           # scores disagree with the ranking: rank distance
    assert m[("x2", "x3")] == (1.0, "rank")           # no score


def test_splits_exact_and_grouped():
    items = [(f"q{i:05d}", f"第{i}号问题：我最近尿频尿急，晚上起夜{i}次，是前列腺的问题吗？编号{i * 7919}") for i in range(5000)]
    split, info = assign_splits(items, cluster_threshold=None)
    counts = {s: list(split.values()).count(s) for s in ("train", "validation", "test")}
    assert counts == {"train": 4500, "validation": 250, "test": 250}
    assert split == assign_splits(items, cluster_threshold=None)[0]  # deterministic
    # near-duplicate prompts share one split
    base = "医生您好，我今年三十五岁，最近一个月小便时有灼热感，伴有尿频尿急，晚上要起夜三四次，请问这是什么原因？需要做什么检查？"
    few = [(f"a{i}", f"完全不同的第{i}个问题，关于肾结石的饮食注意事项和复查时间安排{i}") for i in range(200)]
    few += [(f"d{i}", base + "谢谢" * (i % 3)) for i in range(10)]
    split, info = assign_splits(few, validation=0.05, test=0.05, cluster_threshold=0.6)
    assert len({split[f"d{i}"] for i in range(10)}) == 1 and info["prompts_in_multi_clusters"] >= 10
    # test and validation fill up to round(N x 5%) and never past it; a cluster is passed over only
    # when it does not fit, so every cluster left in train is bigger than what a split still lacks
    target = round(len(few) * 0.05)
    size = Counter(prompt_clusters(few, 0.6).values())
    train_clusters = {c for pid, c in prompt_clusters(few, 0.6).items() if split[pid] == "train"}
    for s in ("validation", "test"):
        have = list(split.values()).count(s)
        assert target - min(size[c] for c in train_clusters) < have <= target, (s, have)


def test_no_prompt_in_two_splits_with_multiple_annotators():
    t = pa.concat_tables([candidates_table(40), candidates_table(40).set_column(4, "annotator", pa.array(["b"] * 40))])
    prefs, stats = build_pairs(t, cluster_threshold=None)
    seen = {}
    for pid, s in zip(prefs.column("prompt_id").to_pylist(), prefs.column("split").to_pylist()):
        assert seen.setdefault(pid, s) == s
    assert stats["splits"]["test"]["prompts"] == 2 and stats["splits"]["validation"]["prompts"] == 2


def test_mixing_general_preferences():
    dom, _ = build_pairs(candidates_table(40), cluster_threshold=None)
    gen, _ = build_pairs(candidates_table(40).set_column(0, "prompt_id", pa.array([f"g{i}" for i in range(40)])),
                         cluster_threshold=None, origin="general@1")
    mixed, info = mix_general(dom, gen, 0.5, origin="general@1")
    n_train = dom.filter(pc.equal(dom.column("split"), "train")).num_rows
    assert info["per_split"]["train"]["added"] == round(n_train * 0.5)
    assert mixed.num_rows == dom.num_rows + sum(v["added"] for v in info["per_split"].values())


def test_label_config_parses_as_xml():
    import xml.etree.ElementTree as ET

    for ties in (False, True):
        root = ET.fromstring(label_config(4, ties=ties))
        assert root.find(".//Ranker").get("toName") == "responses"


def test_cli_push_pull_pairs_json(store, tmp_path, capsys):
    from cumed.cli import main

    def run(*args):
        capsys.readouterr()
        main([*args, "--store", str(store.root), "--json"])
        return json.loads(capsys.readouterr().out)

    res = run("rank", "push", "cands@1", "--n", "3", "--k", "4")
    tasks = json.load(open(res["tasks_file"], encoding="utf-8"))
    truth = model_order(res["tasks_file"], store.root / "_ranking" / "cands" / res["batch"] / "batch.json")
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export(tasks, {"a@x": truth})), encoding="utf-8")
    pulled = run("rank", "pull", res["batch"], "--from", str(path))
    assert pulled["ref"] == "cumed-rm-rankings@1" and pulled["rankings"] == 3
    pairs = run("rank", "pairs", pulled["ref"], "--all-pairs", "--cluster-threshold", "0")
    assert pairs["rows"] == 3 * 6 and pairs["mode"] == "all"
