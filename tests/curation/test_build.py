"""``cumed build`` end to end: accounting, bad input, determinism, resume, executors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml

from curation.build import build
from cumed.errors import CumedError
from curation.steps.filters import FILTERS
from cumed.store import Store

REPO = Path(__file__).resolve().parents[2]

GOOD_ROWS = [
    ("泌尿外科", "尿频尿急怎么办", "最近一周小便次数多，每次量少，有时候还有点疼，需要去医院检查吗？", "您好，根据您的描述，考虑尿路感染可能性大，建议到医院做尿常规检查，明确诊断后在医生指导下使用抗生素治疗，平时多喝水，注意个人卫生。"),
    ("男科", "前列腺炎能治好吗", "三十岁，确诊慢性前列腺炎半年了，一直吃药效果不明显，会阴部坠胀。", "慢性前列腺炎病程较长，需要综合治疗，包括规律作息、避免久坐、热水坐浴，配合药物治疗，多数患者症状可以明显缓解，请耐心坚持复诊。"),
    ("肾内科", "肌酐偏高是什么原因", "体检发现血肌酐135μmol/L，尿蛋白阳性，平时血压偏高，需要注意什么？", "血肌酐升高提示肾功能可能受损，结合尿蛋白阳性和高血压，建议到肾内科进一步检查肾功能、肾脏超声，控制血压，低盐低蛋白饮食，定期复查。"),
]


def write_tiny_raw(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    header = "department,title,ask,answer\n"
    body = "".join(",".join(r) + "\n" for r in GOOD_ROWS)
    (root / "good.csv").write_bytes((header + body).encode("gb18030"))
    # Row 3 lacks the answer column.
    broken = header + ",".join(GOOD_ROWS[0]) + "\n" + ",".join(GOOD_ROWS[1][:3]) + "\n" + ",".join(GOOD_ROWS[2]) + "\n"
    (root / "missing_column.csv").write_bytes(broken.encode("gb18030"))
    # Declared gb18030 in the recipe but really UTF-8 with GB-invalid sequences mixed in.
    (root / "wrong_encoding.csv").write_bytes(header.encode() + body.encode("utf-8") + b"\xff\xfe,\xff,\xff,\xff\n")
    items = [{"q": r[1] + r[2], "a": r[3]} for r in GOOD_ROWS]
    text = json.dumps(items, ensure_ascii=False)
    (root / "truncated.json").write_text(text[: int(len(text) * 0.8)], encoding="utf-8")
    (root / "empty.json").write_text("", encoding="utf-8")


def write_recipe(path: Path, steps: dict | None = None, shards: int = 3) -> Path:
    from tests.conftest import RAW

    # The tiny raw folder has no CMeKG: the lexicon filter reads its terms from the real raw data.
    steps = steps if steps is not None else {"filters": {**{n: {} for n in FILTERS}, "lexicon_density": {"raw_dir": str(RAW)}}}
    recipe = {
        "name": "tiny",
        "kind": "documents",
        "shards": shards,
        "sources": [
            {"name": "good", "reader": "csv", "path": "good.csv", "category": "qa",
             "options": {"encoding": "gb18030", "template": "{title}\n{ask}\n{answer}", "department_field": "department"}},
            {"name": "missing_column", "reader": "csv", "path": "missing_column.csv", "category": "qa",
             "options": {"encoding": "gb18030", "template": "{title}\n{ask}\n{answer}"}},
            {"name": "wrong_encoding", "reader": "csv", "path": "wrong_encoding.csv", "category": "qa",
             "options": {"encoding": "gb18030", "template": "{title}\n{ask}\n{answer}"}},
            {"name": "truncated", "reader": "json", "path": "truncated.json", "category": "qa",
             "options": {"format": "json", "template": "{q}\n{a}"}},
            {"name": "empty", "reader": "json", "path": "empty.json", "category": "qa", "options": {"format": "json"}},
        ],
        "steps": steps,
    }
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture()
def tiny(tmp_path):
    raw = tmp_path / "raw"
    write_tiny_raw(raw)
    return raw, write_recipe(tmp_path / "tiny.yaml")


def test_every_document_is_kept_or_removed_with_a_reason(tiny, tmp_path):
    raw, recipe = tiny
    dv, stats = build(recipe, raw, Store(tmp_path / "store"), work_root=tmp_path / "work", progress=False)
    kept, removed = dv.to_arrow(), dv.to_arrow("removed")
    for name, s in stats["sources"].items():
        n_kept = pc.sum(pc.equal(kept.column("source"), name)).as_py() or 0
        n_removed = pc.sum(pc.equal(removed.column("source"), name)).as_py() or 0
        assert s["read"] == n_kept + n_removed == s["kept"] + s["removed"], name
    assert all(removed.column("reason").to_pylist()) and all(removed.column("removed_by").to_pylist())
    reasons = dict(zip(removed.column("id").to_pylist(), removed.column("reason").to_pylist()))
    by_source = {}
    for src, reason in zip(removed.column("source").to_pylist(), removed.column("reason").to_pylist()):
        by_source.setdefault(src, []).append(reason)
    # Each planted fault is a counted removal naming the file and the line.
    assert any("missing_column.csv" in r and "line 3" in r for r in by_source["missing_column"]), by_source
    assert any("wrong_encoding.csv" in r and "line 5" in r for r in by_source["wrong_encoding"]), by_source
    assert any("truncated.json" in r for r in by_source["truncated"]), by_source
    assert any("empty file" in r for r in by_source["empty"]), by_source
    assert stats["sources"]["good"]["kept"] == 3
    assert len(reasons) == dv.removed_rows


def test_same_version_whatever_the_workers(tiny, tmp_path):
    raw, recipe = tiny
    a, _ = build(recipe, raw, Store(tmp_path / "s1"), workers=1, work_root=tmp_path / "w1", progress=False)
    b, _ = build(recipe, raw, Store(tmp_path / "s2"), workers=3, work_root=tmp_path / "w2", progress=False)
    assert a.content_hash == b.content_hash
    again, _ = build(recipe, raw, Store(tmp_path / "s1"), workers=2, work_root=tmp_path / "w3", progress=False)
    assert again.version == a.version == 1


def test_changed_code_never_resumes_from_the_old_code_work(tiny, tmp_path, monkeypatch):
    import curation.build.documents as build_mod

    raw, recipe = tiny
    a, _ = build(recipe, raw, Store(tmp_path / "s"), work_root=tmp_path / "w", progress=False)
    assert a.manifest["lineage"]["code_sha256"] == build_mod.code_fingerprint(*build_mod.CODE_PACKAGES)
    assert len(list((tmp_path / "w").iterdir())) == 1
    # the same sources, recipe and version string, but other code: a new work folder
    monkeypatch.setattr(build_mod, "code_fingerprint", lambda *packages: "0" * 64)
    b, _ = build(recipe, raw, Store(tmp_path / "s"), work_root=tmp_path / "w", progress=False)
    assert len(list((tmp_path / "w").iterdir())) == 2
    assert b.content_hash == a.content_hash


def test_a_lost_document_publishes_nothing(tiny, tmp_path, monkeypatch):
    """The figures are gathered while publishing (one pass over the kept rows), and the store
    asks for them before it commits: a row that goes missing between stage C and the store is
    still caught (read != kept + removed) and no version appears."""
    from curation.build.kept import KeptRows

    raw, recipe = tiny
    batches = KeptRows.batches

    def one_row_short(self, *a, **k):
        for i, t in enumerate(batches(self, *a, **k)):
            yield t.slice(1) if i == 0 else t

    monkeypatch.setattr(KeptRows, "batches", one_row_short)
    store = Store(tmp_path / "s")
    with pytest.raises(CumedError, match=r"documents unaccounted for \(truncated: read 3 != kept 1 \+ removed 1\)"):
        build(recipe, raw, store, work_root=tmp_path / "w", progress=False)
    assert store.versions("tiny") == []


def test_a_task_that_raises_fails_the_build_in_one_line_and_resumes_once_fixed(tiny, tmp_path):
    """A source unusable as a whole (here: a header that does not decode) stops the build with the
    reader's own message, from a pool of workers, without hanging; fixing it resumes the build."""
    raw, recipe = tiny
    good = (raw / "good.csv").read_bytes()
    (raw / "good.csv").write_bytes(b"\xff\xfe\xff" + good)
    for _ in range(2):  # the second run resumes: only the failed (and skipped) ranks run again
        with pytest.raises(CumedError, match=r"stage 'read \+ clean \+ filter' finished [0-2] of 3 tasks: ValueError: "
                                             r"source good: cannot decode the header of good.csv .*; task logs in .*logs/a/logs"):
            build(recipe, raw, Store(tmp_path / "s"), workers=2, work_root=tmp_path / "w", progress=False)
        [work] = (tmp_path / "w").iterdir()
        failed_rank = int((work / "logs" / "a" / "failed").read_text())
        assert f"{failed_rank:05d}" not in {p.name for p in (work / "logs" / "a" / "completions").iterdir()}
    (raw / "good.csv").write_bytes(good)
    dv, stats = build(recipe, raw, Store(tmp_path / "s"), workers=2, work_root=tmp_path / "w", progress=False)
    assert stats["sources"]["good"]["kept"] == 3 and dv.version == 1


def test_recipe_errors_name_the_place(tiny, tmp_path):
    raw, recipe = tiny
    data = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    data["sources"][0]["options"]["encoding"] = "gbk2"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(CumedError, match=r"gbk2.*good"):
        build(bad, raw, Store(tmp_path / "s"), work_root=tmp_path / "w", progress=False)
    data["sources"][0]["options"]["encoding"] = "gb18030"
    data["sources"][0]["path"] = "nowhere/*.csv"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(CumedError, match=r"source 'good'.*no file matches 'nowhere/\*\.csv'"):
        build(bad, raw, Store(tmp_path / "s"), work_root=tmp_path / "w", progress=False)
    data["steps"] = {"filtres": {}}
    data["sources"][0]["path"] = "good.csv"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(CumedError, match=r"unknown step\(s\) filtres"):
        build(bad, raw, Store(tmp_path / "s"), work_root=tmp_path / "w", progress=False)


def test_cli_build_json(tiny, tmp_path):
    raw, recipe = tiny
    p = subprocess.run(
        [sys.executable, "-c", "from cumed.cli import main; main()", "build", str(recipe), "--raw", str(raw),
         "--store", str(tmp_path / "store"), "--work-dir", str(tmp_path / "work"), "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["ref"] == "tiny@1" and res["rows"] >= 3 and res["removed_rows"] >= 4


RESUME_SUBSET = ["toyhom_csv", "toyhom_im_blocks", "chinaxiv_medical", "health39_disease_cards"]


def subset_recipe(tmp_path: Path) -> Path:
    data = yaml.safe_load((REPO / "datasets" / "cumed-pretrain.yaml").read_text(encoding="utf-8"))
    data["sources"] = [s for s in data["sources"] if s["name"] in RESUME_SUBSET]
    data["shards"] = 8
    p = tmp_path / "subset.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return p


def test_killed_build_resumes_to_the_same_version(raw_root, tmp_path):
    recipe = subset_recipe(tmp_path)
    reference, _ = build(recipe, raw_root, Store(tmp_path / "ref"), work_root=tmp_path / "w-ref", progress=False)

    cmd = [sys.executable, "-c", "from cumed.cli import main; main()", "build", str(recipe), "--raw", str(raw_root),
           "--store", str(tmp_path / "st"), "--work-dir", str(tmp_path / "w"), "--workers", "1", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 300
    done = lambda: len(list((tmp_path / "w").glob("*/logs/a/completions/*")))  # noqa: E731
    while done() < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "build finished before it could be killed; make the subset larger"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = time.time_ns()
    assert 2 <= done() < 8
    assert Store(tmp_path / "st").versions("cumed-pretrain") == []
    [work] = (tmp_path / "w").iterdir()
    completed = {int(p.name) for p in (work / "logs" / "a" / "completions").iterdir()}
    before = stage_a_files(work, completed)
    assert {"completions", "logs", "stats", "counts"} <= {k[0] for k in before}, before  # what is checked below

    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    resumed = Store(tmp_path / "st").get(json.loads(p.stdout)["ref"])
    assert resumed.content_hash == reference.content_hash
    # Completed tasks were skipped, not redone: the same work folder, and their completion
    # markers, logs, stats and outputs are the very files the killed run wrote (inode, mtime,
    # size); every other task ran in the re-run.
    assert list((tmp_path / "w").iterdir()) == [work]
    assert stage_a_files(work, completed) == before
    rerun = set(range(8)) - completed
    assert {int(p.name) for p in (work / "logs" / "a" / "completions").iterdir()} == completed | rerun
    assert all((work / "logs" / "a" / "logs" / f"task_{r:05d}.log").stat().st_mtime_ns > killed_at for r in rerun)


def stage_a_files(work: Path, ranks: set[int]) -> dict:
    """Stage A's per-task files of ``ranks`` (markers, task logs, stats, counts, outputs), each
    as (folder kind, rank, name) -> (inode, mtime_ns, size): a re-run that redoes a task
    rewrites them, one that skips it leaves them alone."""
    out = {}
    folders = [work / "logs" / "a" / k for k in ("completions", "logs", "stats")]
    folders += [work / k for k in ("counts", "filtered", "signatures", "removed")]
    for folder in folders:
        for f in folder.rglob("*") if folder.is_dir() else ():
            m = re.search(r"(\d{5})$", f.stem)
            if f.is_file() and m and int(m.group(1)) in ranks and "90_dedup" not in f.parts:  # 90_dedup: stage C
                st = f.stat()
                out[(folder.name, int(m.group(1)), f.relative_to(folder).as_posix())] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def test_ray_executor_gives_the_same_version(tiny, tmp_path):
    import ray

    raw, recipe = tiny
    local, _ = build(recipe, raw, Store(tmp_path / "local"), work_root=tmp_path / "wl", progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray, _ = build(recipe, raw, Store(tmp_path / "ray"), executor="ray", workers=2,
                          work_root=tmp_path / "wr", progress=False)
    finally:
        ray.shutdown()
    assert on_ray.content_hash == local.content_hash
    assert len(list((tmp_path / "wr").glob("*/logs/a/completions/*"))) == 3


def test_quality_classifier_as_a_recipe_step(tiny, tmp_path):
    from annotation.quality.artifact import save_artifact
    from annotation.quality.train import train_classifier

    raw, _ = tiny
    store = Store(tmp_path / "store")
    good = [r[3] for r in GOOD_ROWS] * 10
    bad = ["作为一个AI语言模型，我无法提供医疗建议，请咨询专业医生。", "很抱歉，我不能回答这个问题。"] * 15
    model = train_classifier([(t, "keep") for t in good] + [(t, "discard") for t in bad], tokenizer="char", seed=0)
    save_artifact(model, store, "quality", metrics={}, threshold=0.5, target_precision=0.9, lineage={"test": True})
    recipe = write_recipe(tmp_path / "q.yaml", steps={"filters": False, "quality": {"artifact": "quality@latest", "threshold": 0.999999}})
    dv, stats = build(recipe, raw, store, work_root=tmp_path / "w", progress=False)
    removed = dv.to_pandas("removed")
    by_quality = removed[removed.removed_by == "quality"]
    assert len(by_quality) >= 1 and by_quality.reason.str.match(r"quality: [0-9.]+ < 1\.0+").all()
    assert dv.manifest["lineage"]["models"][0]["version"] == 1
    assert all("quality_score" in json.loads(m) for m in dv.to_pandas().metadata)
