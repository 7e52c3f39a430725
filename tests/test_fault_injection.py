"""SIGKILL at random moments of the commands a team runs, then the same command again.

After every kill and re-run: every listed version verifies (local and remote); a build publishes
exactly what an uninterrupted build publishes (every input document kept or removed with a
reason); a push or pull ends with the same files and hashes (a push killed before its commit
resumes under the same number, uploading only what was missing); a review or rank push queues each
item exactly once in one batch (the batch a killed push began is finished, not replaced; a kill
after the batch was complete leaves it so). Each kill is checked to have landed mid-command (the
process was still running, had started its work and, for a queue, had not completed its batch),
so a run that finished before the signal does not count. 36 kills in all.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc

from cumed.store import Store
from tests.cumed.test_remote_store import _env, bucket, s3_server  # noqa: F401 - fixtures
from tests.cumed.test_store import docs_table, removed_table

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys; from cumed.cli import main; sys.argv[0] = 'cumed'; main()"]
KILLS_PER_COMMAND = 8  # build, push, pull
QUEUE_KILLS = 6  # review push, rank push: 36 kills in all


def _start(args: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], cwd=REPO, env=env or _env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _run(args: list[str], env: dict | None = None) -> dict:
    p = subprocess.run([*CLI, *args, "--json"], cwd=REPO, env=env or _env(), capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout)


def _wait_started(proc: subprocess.Popen, started, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not started() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)


def _measure(args: list[str], started, env: dict | None = None, finished=None) -> float:
    """Seconds a command works once ``started()`` (past interpreter start-up and imports), until
    it exits or, when given, until ``finished()`` (its commit: what follows is only tear-down)."""
    proc = _start(args, env)
    _wait_started(proc, started)
    t0 = time.perf_counter()
    if finished is not None:
        _wait_started(proc, finished)
        span = time.perf_counter() - t0
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return span if finished is not None else time.perf_counter() - t0


def _kill_mid(args: list[str], span: float, rng: random.Random, started, env: dict | None = None,
              window: tuple[float, float] = (0.05, 0.8)) -> bool:
    """Start the command and, once it has started its work, kill it at a random moment of its
    usual working time; True when the kill landed while it was still running."""
    proc = _start(args, env)
    _wait_started(proc, started)
    began = started()
    time.sleep(rng.uniform(*window) * span)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return proc.returncode == -signal.SIGKILL and began


def _processes_naming(marker: str) -> list[int]:
    """Live processes whose command line names ``marker`` (a killed build's pool workers carry its arguments)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = next((line.split()[1] for line in (proc / "status").read_text().splitlines()
                              if line.startswith("State:")), "Z")
            except OSError:
                continue
            if marker in cmd and state != "Z":
                pids.append(int(proc.name))
    return pids


def _assert_no_orphans(marker: str, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while _processes_naming(marker) and time.time() < deadline:
        time.sleep(0.1)
    left = _processes_naming(marker)
    info = []
    for pid in left:
        try:
            st = Path(f"/proc/{pid}/status").read_text()
            info.append((pid, [l for l in st.splitlines() if l.startswith(("PPid", "State", "Name"))],
                         Path(f"/proc/{pid}/cmdline").read_bytes()[:300]))
        except OSError:
            pass
    for pid in left:  # do not leave them to the next test either
        os.kill(pid, 9)
    assert not left, f"{len(left)} worker process(es) outlived the killed build: {info}"


def _assert_consistent(st: Store) -> None:
    for row in st.list():
        assert "error" not in row, row
        assert st.verify(row["ref"]).ok, row


def test_build_killed_at_random_moments_publishes_what_an_uninterrupted_build_does(tmp_path):
    from tests.curation.test_build import write_recipe, write_tiny_raw

    raw = tmp_path / "raw"
    write_tiny_raw(raw)
    recipe = write_recipe(tmp_path / "tiny.yaml")
    ref_store = tmp_path / "reference"
    args = lambda store, work: ["build", str(recipe), "--raw", str(raw), "--store", str(store),  # noqa: E731
                                "--work-dir", str(work), "--workers", "2"]
    span = _measure(args(ref_store, tmp_path / "ref-work"), started=lambda: (tmp_path / "ref-work").exists())
    reference = Store(ref_store).get("tiny@1")
    rng = random.Random(16)
    landed = 0
    for i in range(KILLS_PER_COMMAND):
        store, work = tmp_path / f"s{i}", tmp_path / f"w{i}"
        landed += _kill_mid(args(store, work), span, rng, started=lambda w=work: w.exists())
        if sys.platform.startswith("linux"):
            _assert_no_orphans(str(work))  # the pool's workers died with the build (PR_SET_PDEATHSIG)
        assert Store(store).list() == [] or Store(store).get("tiny@1").content_hash == reference.content_hash
        res = _run(args(store, work))  # the same command resumes
        dv = Store(store).get(res["ref"])
        assert (dv.ref, dv.content_hash) == ("tiny@1", reference.content_hash)
        _assert_consistent(Store(store))
        kept, removed = dv.to_arrow(), dv.to_arrow("removed")
        for name, s in dv.manifest["stats"]["sources"].items():
            n = (pc.sum(pc.equal(kept.column("source"), name)).as_py() or 0) + \
                (pc.sum(pc.equal(removed.column("source"), name)).as_py() or 0)
            assert s["read"] == n, name  # every input document kept or removed, none twice
        assert all(removed.column("reason").to_pylist())
    assert landed >= KILLS_PER_COMMAND - 2, f"only {landed} kills landed mid-build"


def test_push_and_pull_killed_at_random_moments(bucket, tmp_path):  # noqa: F811 - fixture
    local = Store(tmp_path / "local")
    dv = local.publish("corpus", docs_table(120_000), removed=removed_table(5_000))
    rng = random.Random(17)
    remote = f"s3://{bucket}/team"

    import boto3

    s3 = boto3.client("s3")
    claimed = lambda prefix: lambda: bool(s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/corpus/").get(  # noqa: E731
        "KeyCount"))  # its claim is the first object a push writes
    committed = lambda: bool(s3.list_objects_v2(Bucket=bucket, Prefix="team/corpus/v1/manifest.json").get(  # noqa: E731
        "KeyCount"))
    span = _measure(["datasets", "push", "corpus@1", "--store", str(local.root), "--to", remote], claimed("team"),
                    finished=committed)
    landed = resumed = 0
    for i in range(KILLS_PER_COMMAND):
        target = f"s3://{bucket}/p{i}"
        started = claimed(f"p{i}")
        landed += _kill_mid(["datasets", "push", "corpus@1", "--store", str(local.root), "--to", target], span, rng,
                            started)
        st = Store(target)
        _assert_consistent(st)
        assert st.versions("corpus") in ([], [1])
        half = Store(target).versions("corpus") == []  # killed before its commit: resumed, not renumbered
        res = _run(["datasets", "push", "corpus@1", "--store", str(local.root), "--to", target])
        assert res["ref"] == "corpus@1" and res["content_hash"] == dv.content_hash
        assert res["resumed"] == half
        resumed += half
        _assert_consistent(st)
        st.gc(min_age_s=0)
    assert landed >= KILLS_PER_COMMAND - 2, f"only {landed} kills landed mid-push"
    assert resumed, "no kill landed before a push's commit"

    pull = lambda to: ["datasets", "pull", "corpus@1", "--store", remote, "--to", str(to)]  # noqa: E731
    span = _measure(pull(tmp_path / "pull-ref"), started=lambda: (tmp_path / "pull-ref" / "corpus").exists())
    landed = 0
    for i in range(KILLS_PER_COMMAND):
        to = tmp_path / f"pull{i}"
        landed += _kill_mid(pull(to), span, rng, started=lambda t=to: (t / "corpus").exists())
        assert Store(to).versions("corpus") in ([], [1])  # nothing half-pulled is visible
        res = _run(pull(to))
        assert res["ref"] == "corpus@1" and res["downloaded"] + res["skipped"] == res["files"]
        got = Store(to).get("corpus@1")
        assert got.content_hash == dv.content_hash and Store(to).verify("corpus@1").ok
    assert landed >= KILLS_PER_COMMAND - 2, f"only {landed} kills landed mid-pull"


def _batch_docs(folder: Path, key: str) -> list[str]:
    tasks = json.loads((folder / "tasks.json").read_text(encoding="utf-8"))
    return [t["data"][key] for t in tasks]


def test_review_and_rank_push_killed_at_random_moments(raw_root, tmp_path):
    """A review push and a rank push (file backend) killed mid-push: the re-run finishes the same
    batch with the same items, each queued once, and the next batch takes none of them."""
    rng = random.Random(18)
    review = tmp_path / "review"
    Store(review).publish("corpus", docs_table(30_000))
    rank = tmp_path / "rank"
    _run(["rank", "import-disc", "--raw", str(raw_root), "--store", str(rank)])

    cases = [
        ("review", review, "_review/corpus/corpus.r001", "doc_id",
         lambda store: ["review", "push", "corpus@1", "--n", "3000", "--seed", "1", "--store", str(store)], 3000),
        ("rank", rank, "_ranking/disc-rankings/disc-rankings.k001", "prompt_id",
         lambda store: ["rank", "push", "disc-rankings@1", "--n", "100", "--k", "4", "--store", str(store)], 100),
    ]
    for what, template, batch_dir, key, args, n in cases:
        ref_store = tmp_path / f"{what}-ref"
        import shutil

        shutil.copytree(template, ref_store)
        span = _measure(args(ref_store), started=lambda s=ref_store: (s / batch_dir).exists())
        reference = _batch_docs(ref_store / batch_dir, key)
        landed = 0
        for i in range(QUEUE_KILLS):
            store = tmp_path / f"{what}{i}"
            shutil.copytree(template, store)
            # a push is short once started (writing its tasks): kills go to the first 60 % of it
            killed = _kill_mid(args(store), span, rng, started=lambda s=store: (s / batch_dir).exists(),
                               window=(0.0, 0.6))
            info = store / batch_dir / "batch.json"
            before = json.loads(info.read_text(encoding="utf-8")).get("state") if info.is_file() else None
            landed += killed and before != "pushed"  # killed before its batch was complete
            res = _run(args(store))
            if before == "pushed":  # the kill came after the push was done: the re-run is a new batch
                assert res["batch"] != Path(batch_dir).name
            else:  # the re-run finishes (or, without a saved batch, makes) the batch the killed push began
                assert res["batch"] == Path(batch_dir).name and res["tasks"] == n, res
            assert json.loads(info.read_text(encoding="utf-8"))["state"] == "pushed"
            items = _batch_docs(store / batch_dir, key)
            assert len(items) == len(set(items)) == n and sorted(items) == sorted(reference)
            nxt = _run(args(store)[:-2] + ["--seed", "2", "--store", str(store)])  # a new batch
            assert nxt["batch"] != Path(batch_dir).name
            assert not set(_batch_docs(store / Path(batch_dir).parent / nxt["batch"], key)) & set(items)
        assert landed >= QUEUE_KILLS // 2, f"only {landed} of {QUEUE_KILLS} kills landed mid-{what}-push"
