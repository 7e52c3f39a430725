"""One ranking round trip against a real Label Studio server (session fixture in conftest.py):
push (project created with the ranking config: the server validates it) -> ranker annotations
created through the SDK -> pull -> rankings -> pairs."""

from __future__ import annotations

import json

from annotation.ranking.config import result_items
from annotation.ranking.pairs import build_pairs
from annotation.ranking.queue import pull, push
from cumed.store import Store
from tests.annotation.test_ranking import MODELS, candidates_table


def test_rank_round_trip_on_label_studio(backend_factory, dataset, tmp_path):
    st = Store(tmp_path / "s")
    st.publish(dataset, candidates_table(3), kind="rankings")
    b = backend_factory(task_type="ranking")
    res = push(st, f"{dataset}@1", 3, lambda d: b, k=4, seed=5)
    assert res["pushed"] == 3
    info = json.loads((st.root / "_ranking" / dataset / res["batch"] / "batch.json").read_text(encoding="utf-8"))
    tasks = b.pull(res["batch"], dataset)
    assert len(tasks) == 3
    for t in tasks:
        rec = info["prompts"][t["data"]["prompt_id"]]
        by_model = {r["model"]: r["response_id"] for r in rec["responses"]}
        b.client.annotations.create(id=t["id"], result=result_items([by_model[m] for m in MODELS]))
    out = pull(st, res["batch"], b, publish="rk")
    assert out["rankings"] == 3 and not out["problems"] and not out["counts"]["mismatch"]
    prefs, _ = build_pairs(st.get("rk").to_arrow(), cluster_threshold=None)
    assert prefs.num_rows == 9
    assert all(MODELS.index(r["chosen_model"]) < MODELS.index(r["rejected_model"]) for r in prefs.to_pylist())


def test_cli_rank_push_and_pull_on_labelstudio(ls_server, raw_root, tmp_path, dataset):
    """`cumed rank push/pull --backend labelstudio` reach the real server through the CLI."""
    import json as _json
    import subprocess
    import sys

    from annotation.ranking.build import import_medicalgpt
    from cumed.store import Store

    st = Store(tmp_path / "store")
    # a name of its own: the session server's data folder outlives a run, and a project that
    # already holds these tasks would (rightly) take none of them again
    rv, _ = import_medicalgpt(raw_root, st, name=dataset)
    common = ["--store", str(st.root), "--backend", "labelstudio", "--ls-token-file", str(ls_server.env_file), "--json"]
    run = lambda *a: subprocess.run([sys.executable, "-c", "from cumed.cli import main; main()", *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=300)
    p = run("rank", "push", rv.ref, "--n", "3", "--k", "2", *common)
    assert p.returncode == 0, p.stderr
    pushed = _json.loads(p.stdout)
    assert pushed["tasks"] == 3 and pushed["pushed"] == 3
    # no --backend on pull: the batch records the server it was pushed to
    p = run("rank", "pull", pushed["batch"], "--store", str(st.root), "--ls-token-file", str(ls_server.env_file),
            "--json")
    assert p.returncode == 0, p.stderr
    assert _json.loads(p.stdout)["new_rankings"] == 0  # nobody ranked yet: nothing invented
