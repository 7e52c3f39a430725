"""A build whose work folder, sources and store are all on object storage (a moto S3 server),
run on a local Ray instance with two workers: the nodes of such a cluster share nothing but the
bucket, so every task works in a private scratch folder, deleted when it ends (issue #17)."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from cumed.errors import CumedError
from cumed.store import Store
from curation.build import build
from tests.cumed.test_remote_store import bucket, cli, s3_server  # noqa: F401 - fixtures
from tests.curation.test_build import GOOD_ROWS, write_recipe, write_tiny_raw

STEPS = {"normalize": {}, "filters": {"min_length": {}, "cjk_ratio": {}}, "dedup": {}}


def write_raw(root: Path) -> None:
    """The tiny raw folder, plus the users' own formats: a gzipped JSON Lines file and a Parquet
    file whose texts repeat the CSV's (exact duplicates across sources, for the dedup stages)."""
    write_tiny_raw(root)
    texts = [f"{title}\n{ask}\n{answer}" for _, title, ask, answer in GOOD_ROWS]
    (root / "user").mkdir()
    with gzip.open(root / "user" / "dumps.jsonl.gz", "wt", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": f"d{i}", "text": t + "\n谢谢医生。"}, ensure_ascii=False) + "\n")
    pq.write_table(pa.table({"id": ["p0", "p1", "p2"], "text": texts}), root / "user" / "rows.parquet")


def recipe_file(path: Path, user_paths: tuple[str, str]) -> Path:
    write_recipe(path, steps=STEPS, shards=3)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["sources"] += [
        {"name": "dumps", "reader": "jsonl", "path": user_paths[0], "category": "qa",
         "options": {"text_field": "text", "id_field": "id"}},
        {"name": "rows", "reader": "parquet", "path": user_paths[1], "category": "qa",
         "options": {"text_field": "text", "id_field": "id"}},
    ]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def upload(folder: Path, bucket: str, prefix: str) -> None:
    import boto3

    s3 = boto3.client("s3")
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.upload_file(str(f), bucket, f"{prefix}/{f.relative_to(folder).as_posix()}")


def keys(bucket: str, prefix: str) -> list[str]:
    import boto3

    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_ray_build_on_s3_publishes_what_a_local_build_does(bucket, tmp_path, monkeypatch):  # noqa: F811 - fixture
    import boto3
    import ray

    raw = tmp_path / "raw"
    write_raw(raw)
    local, _ = build(recipe_file(tmp_path / "local.yaml", ("user/*.jsonl.gz", "user/rows.parquet")), raw,
                     Store(tmp_path / "store"), work_root=tmp_path / "work", progress=False)
    assert any(r.startswith("dedup") for r in local.manifest["stats"]["removed_by_reason"]), "nothing to deduplicate"

    upload(raw, bucket, "raw")
    # relative paths resolve under --raw s3://...; a source path may be an s3:// glob itself
    recipe = recipe_file(tmp_path / "s3.yaml", ("user/*.jsonl.gz", f"s3://{bucket}/raw/user/*.parquet"))
    scratch = tmp_path / "scratch"
    monkeypatch.setenv("CUMED_SCRATCH_DIR", str(scratch))  # before ray.init: the workers inherit it
    before = sorted(p for p in tmp_path.rglob("*") if scratch not in p.parents and p != scratch)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote, stats = build(recipe, f"s3://{bucket}/raw", Store(f"s3://{bucket}/store"), executor="ray", workers=2,
                              work_root=f"s3://{bucket}/work", progress=False, dedup_tasks=2)
    finally:
        ray.shutdown()

    assert remote.ref == "tiny@1" and remote.path.startswith(f"s3://{bucket}/store/")
    assert remote.content_hash == local.content_hash
    assert (remote.rows, remote.removed_rows) == (local.rows, local.removed_rows)
    assert [i["sha256"] for i in remote.manifest["lineage"]["inputs"]] == \
        [i["sha256"] for i in local.manifest["lineage"]["inputs"]]

    # every stage's files are in the bucket, none on this machine
    [work] = {k.split("/")[1] for k in keys(bucket, "work/")}
    folders = {k.split("/")[2] for k in keys(bucket, f"work/{work}/")}
    assert {"counts", "filtered", "signatures", "dedup", "kept", "removed", "logs"} <= folders
    assert len([k for k in keys(bucket, f"work/{work}/logs/b-candidates-2/completions/")]) == 2
    assert sorted(p for p in tmp_path.rglob("*") if scratch not in p.parents and p != scratch) == before

    # the tasks worked in private scratch folders (their logs say where, and what they held),
    # all deleted when they ended
    s3 = boto3.client("s3")
    logged = []
    for key in keys(bucket, f"work/{work}/logs/"):
        if key.endswith(".log"):
            text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
            logged += re.findall(r"scratch (\S+): held (\d+) files", text)
    used = {Path(p) for p, n in logged if int(n) > 0}
    assert len(used) >= 3 + 2, logged  # at least stage A's signatures and stage B's downloads
    assert all(scratch in p.parents and p.parent.name.startswith("cumed-task-") for p in used), used
    assert not any(p.exists() for p in used)
    assert scratch.is_dir() and list(scratch.iterdir()) == []

    # a killed build resumes from the bucket: the task whose completion marker is missing runs
    # again (here through the CLI, on local processes), every other task of every stage is skipped
    s3.delete_object(Bucket=bucket, Key=f"work/{work}/logs/a/completions/00001")
    etag = lambda key: s3.head_object(Bucket=bucket, Key=key)["ETag"]  # noqa: E731
    task_logs = {k: etag(k) for k in keys(bucket, f"work/{work}/logs/") if k.endswith(".log")}
    r = cli("build", str(recipe), "--raw", f"s3://{bucket}/raw", "--work", f"s3://{bucket}/work", "--store",
            f"s3://{bucket}/store", "--workers", "2", "--dedup-tasks", "2", "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    assert (json.loads(r.stdout)["ref"], json.loads(r.stdout)["content_hash"]) == ("tiny@1", local.content_hash)
    assert {k for k, v in task_logs.items() if etag(k) != v} == {f"work/{work}/logs/a/logs/task_00001.log"}
    assert list(scratch.iterdir()) == []


def test_missing_bucket_names_the_url_and_the_fix(s3_server, tmp_path):  # noqa: F811 - fixture
    raw = tmp_path / "raw"
    write_raw(raw)
    recipe = recipe_file(tmp_path / "r.yaml", ("user/*.jsonl.gz", "user/rows.parquet"))
    with pytest.raises(CumedError, match=r"--work s3://no-such-bucket-x/builds.*bucket 'no-such-bucket-x' does not "
                                         r"exist.*create it or fix the URL"):
        build(recipe, raw, Store(tmp_path / "store"), work_root="s3://no-such-bucket-x/builds", progress=False)
    with pytest.raises(CumedError, match=r"raw data folder s3://no-such-bucket-x/raw.*does not exist"):
        build(recipe, "s3://no-such-bucket-x/raw", Store(tmp_path / "store"), progress=False)


SIDE_STEPS = {**STEPS, "filters": {"min_length": {}, "lexicon_density": {
    "lexicon": ["QASystemOnMedicalGraph_39health/data/*_vocab.txt"]}}, "decontaminate": {}}


def test_side_files_under_an_s3_raw_are_mirrored_and_read_by_the_driver_only(bucket, tmp_path, monkeypatch):  # noqa: F811
    """A recipe whose steps read side files (the evaluation sets, lexicon word lists) builds
    from ``--raw s3://...`` as from the same local folder: the driver mirrors just those files,
    the decontamination index goes to the tasks inside the step, and no task opens a side file."""
    import os
    import shutil

    from cumed.eval_sets import EVAL_FILES
    from curation.steps.decontaminate import Decontaminate
    from tests.conftest import RAW

    raw = tmp_path / "raw"
    write_raw(raw)
    side = [p for files in EVAL_FILES.values() for p in files]
    side += [str(p.relative_to(RAW)) for p in (RAW / "QASystemOnMedicalGraph_39health/data").glob("*_vocab.txt")]
    for rel in side:
        (raw / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RAW / rel, raw / rel)
    recipe = recipe_file(tmp_path / "side.yaml", ("user/*.jsonl.gz", "user/rows.parquet"))
    data = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    recipe.write_text(yaml.safe_dump({**data, "steps": SIDE_STEPS}, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("CUMED_CACHE", str(tmp_path / "cache"))
    local, _ = build(recipe, raw, Store(tmp_path / "store"), work_root=tmp_path / "work", progress=False)
    assert {e["role"] for e in local.manifest["lineage"]["side_inputs"]} == {"eval_set", "lexicon"}

    upload(raw, bucket, "raw")
    opened = tmp_path / "index_loads.txt"  # the processes that load the decontamination index
    load = Decontaminate.load_or_build_index

    def logged(self):
        with open(opened, "a") as f:
            f.write(f"{os.getpid()}\n")
        return load(self)
    monkeypatch.setattr(Decontaminate, "load_or_build_index", logged)
    remote, _ = build(recipe, f"s3://{bucket}/raw", Store(tmp_path / "store2"), workers=2,
                      work_root=tmp_path / "work2", progress=False)
    assert remote.content_hash == local.content_hash
    assert remote.manifest["lineage"]["side_inputs"] == local.manifest["lineage"]["side_inputs"]
    assert opened.read_text().split() == [str(os.getpid())]  # once, in the driver; the tasks got it built
    mirrored = sorted(p.relative_to(next((tmp_path / "cache" / "raw-mirror").iterdir()) / "files").as_posix()
                      for p in (tmp_path / "cache" / "raw-mirror").rglob("files/**/*") if p.is_file())
    assert mirrored == sorted(side)  # the side files only, not the sources

    # a changed file on the bucket is fetched again; an unchanged one is not
    from curation.build.side_mirror import mirror

    folder = mirror(f"s3://{bucket}/raw", side[:2], key="k", what="w")
    before = {rel: (folder / rel).stat().st_mtime_ns for rel in side[:2]}
    import boto3

    boto3.client("s3").put_object(Bucket=bucket, Key=f"raw/{side[0]}", Body=b'[{"changed": true}]')
    mirror(f"s3://{bucket}/raw", side[:2], key="k", what="w")
    assert (folder / side[0]).read_bytes() == b'[{"changed": true}]'
    assert (folder / side[1]).stat().st_mtime_ns == before[side[1]]

    # a side file missing from the bucket names the recipe key to set
    data["steps"] = {**SIDE_STEPS, "filters": {"lexicon_density": {"lexicon": ["nowhere/*.txt"]}}}
    recipe.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(CumedError, match=r"the lexicon files: nothing matches 'nowhere/\*\.txt' under s3://.*/raw; "
                                         r"set steps\.filters\.lexicon_density\.lexicon"):
        build(recipe, f"s3://{bucket}/raw", Store(tmp_path / "store3"), work_root=tmp_path / "work3", progress=False)


def test_remote_inputs_are_hashed_again_only_when_their_etag_changes(bucket, tmp_path, monkeypatch):  # noqa: F811
    """A build hashes every input before it starts; on a bucket that was a second download of
    the corpus on every re-run. The sha256 is remembered with the object's ETag."""
    import hashlib

    import boto3
    import s3fs

    from cumed.hashing import size_sha256_url

    monkeypatch.setenv("CUMED_CACHE", str(tmp_path / "cache"))
    s3, url = boto3.client("s3"), f"s3://{bucket}/raw/a.jsonl"
    s3.put_object(Bucket=bucket, Key="raw/a.jsonl", Body=b'{"text": "one"}\n')
    first = size_sha256_url(url)
    assert first == (16, hashlib.sha256(b'{"text": "one"}\n').hexdigest())

    with monkeypatch.context() as m:  # unchanged: the object is not read again
        m.setattr(s3fs.S3FileSystem, "open", lambda *a, **k: pytest.fail("an unchanged input was downloaded again"))
        assert size_sha256_url(url) == first
    s3.put_object(Bucket=bucket, Key="raw/a.jsonl", Body=b'{"text": "two"}\n')  # same size, new ETag
    assert size_sha256_url(url) == (16, hashlib.sha256(b'{"text": "two"}\n').hexdigest())


def test_conversations_build_from_an_s3_raw_publishes_what_a_local_build_does(bucket, tmp_path, monkeypatch):  # noqa: F811
    """A conversations build runs in one process: from ``--raw s3://...`` it reads a local mirror
    of just its sources and side files, and publishes what the local build of the same files does."""
    import shutil

    from cumed.eval_sets import EVAL_FILES
    from tests.conftest import RAW

    monkeypatch.setenv("CUMED_CACHE", str(tmp_path / "cache"))
    raw = tmp_path / "raw"
    (raw / "dialogues").mkdir(parents=True)
    turns = [("尿频尿急三天了，是不是尿路感染", "建议先做尿常规，多喝水，不要憋尿，必要时在医生指导下用抗生素。"),
             ("前列腺炎会影响生育吗", "慢性前列腺炎一般不直接导致不育，但会影响精液质量，需要规范治疗。"),
             ("肾结石疼起来怎么办", "急性发作可以先止痛，多饮水，结石较大时需要到泌尿外科就诊。")]
    for name, rows in (("a.jsonl", turns[:2]), ("b.jsonl", turns[1:])):
        (raw / "dialogues" / name).write_text("".join(json.dumps({"conversations": [
            {"from": "human", "value": q}, {"from": "gpt", "value": a}]}, ensure_ascii=False) + "\n"
            for q, a in rows), encoding="utf-8")
    (raw / "unrelated").mkdir()
    (raw / "unrelated" / "big.bin").write_bytes(b"x" * 1000)  # not read by the recipe: not mirrored
    cmb = EVAL_FILES["cmb_clin"]
    for rel in cmb:
        (raw / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RAW / rel, raw / rel)
    recipe = tmp_path / "dlg.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "dlg", "kind": "conversations",
        "sources": [{"name": "dlg", "reader": "conv_json", "path": "dialogues/*.jsonl", "category": "dialogue",
                     "options": {"format": "jsonl", "template": "{conversations}",
                                 "each": {"conversations": "[[{from}]]{value}"}}}],
        "steps": {"normalize": {}, "decontaminate": {"eval_sets": ["cmb_clin"]}, "dedup": {}, "splits": {}},
    }, allow_unicode=True), encoding="utf-8")
    local, _ = build(recipe, raw, Store(tmp_path / "store"), progress=False)
    upload(raw, bucket, "raw")
    remote, _ = build(recipe, f"s3://{bucket}/raw", Store(tmp_path / "store2"), progress=False)
    assert local.rows > 0 and remote.content_hash == local.content_hash
    for part in ("inputs", "side_inputs"):
        assert remote.manifest["lineage"][part] == local.manifest["lineage"][part]
    files = next((tmp_path / "cache" / "raw-mirror").iterdir()) / "files"
    assert sorted(p.relative_to(files).as_posix() for p in files.rglob("*") if p.is_file()) == \
        sorted(["dialogues/a.jsonl", "dialogues/b.jsonl", *cmb])


def test_relevance_learns_from_papers_mirrored_from_an_s3_raw(bucket, tmp_path, monkeypatch):  # noqa: F811
    """The shipped recipe's relevance step reads its labelled papers (the ChinaXiv source) from
    ``--raw s3://...`` without ``labels_raw``: the driver mirrors that source and its index, the
    model is the one a local build trained (found in the store by its training key, not trained
    again), and the build publishes the local build's content hash."""
    import shutil

    from tests.conftest import RAW

    raw = tmp_path / "raw"
    shutil.copytree(RAW / "ChinaXiv_medical", raw / "ChinaXiv_medical")
    data = yaml.safe_load((Path(__file__).resolve().parents[2] / "datasets" / "cumed-pretrain.yaml").read_text(encoding="utf-8"))
    data["sources"] = [s for s in data["sources"] if s["name"] == "chinaxiv_medical"]
    data["steps"] = {k: v for k, v in data["steps"].items() if k in ("normalize", "pii", "relevance")}
    data["shards"] = 2
    recipe = tmp_path / "chinaxiv.yaml"
    recipe.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("CUMED_CACHE", str(tmp_path / "cache"))
    local, _ = build(recipe, raw, Store(tmp_path / "store"), work_root=tmp_path / "work", progress=False)
    removed_by = local.manifest["stats"]["sources"]["chinaxiv_medical"]["removed_by"]
    assert any(k.startswith("relevance") for k in removed_by)  # the step ran and removed papers

    shutil.copytree(tmp_path / "store", tmp_path / "store2")  # holds the model the local build trained
    shutil.rmtree(tmp_path / "store2" / data["name"])  # the dataset itself is published again
    upload(raw, bucket, "raw")
    store2 = Store(tmp_path / "store2")
    remote, _ = build(recipe, f"s3://{bucket}/raw", store2, work_root=tmp_path / "work2", progress=False)
    assert remote.content_hash == local.content_hash
    assert store2.models().versions("relevance") == [1]  # found by its training key: same texts, no retraining
    mirrored = {p.relative_to(next((tmp_path / "cache" / "raw-mirror").iterdir()) / "files").as_posix()
                for p in (tmp_path / "cache" / "raw-mirror").rglob("files/**/*") if p.is_file()}
    papers = {p.relative_to(raw).as_posix() for p in (raw / "ChinaXiv_medical").glob("*/*.md")}
    assert mirrored == papers | {"ChinaXiv_medical/chinaxiv_medical_index.jsonl"}


def test_verify_reads_canonical_texts_by_range_on_s3(bucket, tmp_path, monkeypatch):  # noqa: F811 - fixture
    """A verify task on object storage reads its documents' canonical texts as byte ranges of the
    ranks' ``.canon.u16``, never the whole files (a verify task's pairs touch every rank, and the
    ranks' canonical texts together are the corpus's): the same n-grams as the local files give,
    with ranges merged into one request where they are close and read apart where they are not."""
    import random

    import numpy as np
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor

    from curation.dedup import NearDupSignatures
    from curation.dedup import buckets
    from curation.dedup.buckets import SignatureFiles
    from curation.dedup.near import _map_u16

    rng = random.Random(17)
    alphabet = list("患者尿频尿急三天建议做常规检查医生您好前列腺炎，。ABC123") + ["𠀀", "😀"]  # astral: surrogate pairs
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300))) for _ in range(3000)]

    def read(data=None, rank: int = 0, world_size: int = 1):
        for i in range(rank, len(texts), world_size):
            yield Document(text=texts[i], id=f"d{i}", metadata={"source": "s"})

    sig = tmp_path / "sig"
    LocalPipelineExecutor([read, NearDupSignatures(str(sig))], tasks=2, logging_dir=str(tmp_path / "logs")).run()
    upload(sig, bucket, "sig")
    local = SignatureFiles([(str(sig), False)])
    remote = SignatureFiles([(f"s3://{bucket}/sig", False)], scratch=tmp_path / "scratch")
    assert local.n == remote.n == len(texts) and len(remote.parts) == 2
    idx = np.unique(np.r_[0, 1, 2, 700, 701, 1499, 1500, 1501, 2222, 2998, 2999])  # both ranks, runs and gaps
    whole = sum(p.stat().st_size for p in sig.glob("*.canon.u16"))

    fetched = []
    real = remote.parts[0][0].cat_ranges.__func__

    def counted(self, paths, starts, ends, **kw):
        fetched.append(sum(e - s for s, e in zip(starts, ends)))
        return real(self, paths, starts, ends, **kw)

    for gap in (buckets.CANON_GAP, 8):
        monkeypatch.setattr(buckets, "CANON_GAP", gap)
        fetched.clear()
        for df in {id(p[0]): p[0] for p in remote.parts}.values():
            monkeypatch.setattr(df, "cat_ranges", counted.__get__(df))
        want, got = local.shingles(idx, 5), remote.shingles(idx, 5)
        for a, b in zip(want, got):
            assert np.array_equal(a, b)
        assert 0 < sum(fetched) < whole / (2 if gap > 8 else 20), (gap, fetched, whole)
    # the ranges of one rank, against its file read whole
    start, stop = np.array([0, 10, 5000, 90000]), np.array([10, 40, 5001, 90000])
    units, s2, e2 = remote.canon_ranges(0, start, stop)
    full = _map_u16(sig / f"{local.parts[0][1]}.canon.u16")
    assert [units[a:b].tolist() for a, b in zip(s2, e2)] == [full[a:b].tolist() for a, b in zip(start, stop)]
    assert not list((tmp_path / "scratch").rglob("*.canon.u16"))  # no canonical text downloaded whole


def test_candidates_read_their_band_rows_by_range_on_s3(bucket, tmp_path, monkeypatch):  # noqa: F811 - fixture
    """A candidates task on object storage reads, of every band file, only the rows of its hash
    range: found from the file's fence (every ``BAND_FENCE``-th hash), read as one byte range per
    rank. The same rows as the local files give, for every band and range; a fraction of the
    files' bytes fetched, none downloaded. Signatures without fences are downloaded, as before."""
    import random

    import boto3
    import numpy as np
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor

    from curation.dedup import NearDupSignatures, buckets, near
    from curation.dedup.buckets import SignatureFiles, hash_cuts

    for module in (near, buckets):
        monkeypatch.setattr(module, "BAND_FENCE", 64)  # 1,500 rows a rank: a fence of 24 hashes
    rng = random.Random(5)
    texts = ["".join(rng.choice("患者尿频尿急三天建议做常规检查医生您好") for _ in range(rng.randint(5, 80)))
             for _ in range(3000)]

    def read(data=None, rank: int = 0, world_size: int = 1):
        for i in range(rank, len(texts), world_size):
            yield Document(text=texts[i], id=f"d{i}", metadata={"source": "s"})

    sig = tmp_path / "sig"
    LocalPipelineExecutor([read, NearDupSignatures(str(sig))], tasks=2, workers=1,  # in this process: patched
                          logging_dir=str(tmp_path / "logs")).run()
    assert len(np.load(sig / "bands" / "00" / "00000.fence.npy")) == 24
    upload(sig, bucket, "sig")
    local = SignatureFiles([(str(sig), False)])
    remote = SignatureFiles([(f"s3://{bucket}/sig", False)], scratch=tmp_path / "scratch")
    fetched = []
    real = type(remote.parts[0][0]).cat_ranges

    def counted(self, paths, starts, ends, **kw):
        if not any(p.endswith(".fence.npy") for p in paths):  # the rows, not a fence and header
            fetched.extend(e - s for s, e in zip(starts, ends))
        return real(self, paths, starts, ends, **kw)

    monkeypatch.setattr(type(remote.parts[0][0]), "cat_ranges", counted)
    cuts = hash_cuts(8)
    for band in (0, 13, 27):
        for q in range(8):
            fetched.clear()
            want, got = local.band_slices(band, cuts, q), remote.band_slices(band, cuts, q)
            assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1]), (band, q)
            assert len(want[1]) > 100
            # one range per rank: the range's rows and at most two fence gaps more, of 1,500 rows a rank
            assert len(fetched) == 2 and sum(fetched) <= 16 * (len(want[1]) + 2 * 2 * 64) < 16 * 1500, fetched
    assert not list((tmp_path / "scratch").rglob("*.npy"))

    s3 = boto3.client("s3")  # signatures written before fences: whole files downloaded, same rows
    for key in keys(bucket, "sig/bands/"):
        if key.endswith(".fence.npy"):
            s3.delete_object(Bucket=bucket, Key=key)
    old = SignatureFiles([(f"s3://{bucket}/sig", False)], scratch=tmp_path / "scratch2")
    want, got = local.band_slices(13, cuts, 3), old.band_slices(13, cuts, 3)
    assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1])
    assert len(list((tmp_path / "scratch2").rglob("*.npy"))) == 2
