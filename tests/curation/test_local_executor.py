"""One worker runs a stage's tasks in the driver, with nothing forked (``LocalExecutor._run_in_driver``):
datatrove's ``multiprocess.Manager`` was a fork of the driver per stage, and every page the driver
wrote while it lived was copied (``BENCHMARKS.md``). What datatrove's own loop did still holds:
merged stats, completed tasks skipped, a failed task stops the ones after it."""

from __future__ import annotations

import json
import os

from curation.build.local_executor import FAILED, LocalExecutor

_forks: list[int] = []
_counting = [False]


def _count_fork() -> None:
    if _counting[0]:
        _forks.append(os.getpid())


os.register_at_fork(before=_count_fork)


def _counted(ran: list[int]):
    def step(data, rank: int = 0, world_size: int = 1):
        ran.append(rank)
        yield from data or ()

    return step


def _run(tmp_path, ran: list[int], tasks: int = 3, workers: int = 1, fail_rank: int | None = None):
    steps = [_counted(ran)]
    if fail_rank is not None:
        def fail(data, rank: int = 0, world_size: int = 1):
            if rank == fail_rank:
                raise ValueError(f"task {rank} broke")
            yield from data or ()

        steps.insert(0, fail)  # pulled by the counting step: that one has run when it raises
    return LocalExecutor(pipeline=steps, tasks=tasks, workers=workers, logging_dir=str(tmp_path / "logs"),
                         skip_completed=True)


def test_one_worker_forks_nothing_and_merges_the_tasks_stats(tmp_path):
    ran: list[int] = []
    _forks.clear()
    _counting[0] = True
    try:
        stats = _run(tmp_path, ran).run()
    finally:
        _counting[0] = False
    assert ran == [0, 1, 2]
    assert _forks == []  # no Manager server, no pool: the tasks ran in this process
    assert sorted(os.listdir(tmp_path / "logs" / "completions")) == ["00000", "00001", "00002"]
    merged = json.loads((tmp_path / "logs" / "stats.json").read_text())
    assert [s["name"] for s in merged] == [s.name for s in stats.stats]
    assert len(os.listdir(tmp_path / "logs" / "stats")) == 3  # and one stats file per task


def test_one_worker_skips_the_completed_tasks(tmp_path):
    ran: list[int] = []
    _run(tmp_path, ran).run()
    ran.clear()
    assert _run(tmp_path, ran).run() is None and ran == []  # all complete: nothing runs
    os.remove(tmp_path / "logs" / "completions" / "00001")
    _run(tmp_path, ran).run()
    assert ran == [1]  # only the one whose completion was lost


def test_one_worker_stops_after_a_failed_task_and_resumes_it(tmp_path):
    ran: list[int] = []
    _run(tmp_path, ran, fail_rank=1).run()
    assert ran == [0, 1]  # task 2 skipped itself after task 1 failed
    assert (tmp_path / "logs" / FAILED).read_text().strip() == "1"
    assert sorted(os.listdir(tmp_path / "logs" / "completions")) == ["00000"]
    ran.clear()
    _run(tmp_path, ran).run()  # fixed: the incomplete ones run, the marker is gone
    assert ran == [1, 2] and not (tmp_path / "logs" / FAILED).exists()


def test_several_workers_still_use_datatrove_pool(tmp_path):
    ran: list[int] = []  # filled in the pool's processes, not here
    _forks.clear()
    _counting[0] = True
    try:
        _run(tmp_path, ran, tasks=2, workers=2).run()
    finally:
        _counting[0] = False
    # the tasks ran in the pool's processes (started by datatrove's forkserver), and this process
    # forked the Manager's server: the path one worker no longer takes
    assert ran == [] and len(_forks) >= 1
    assert sorted(os.listdir(tmp_path / "logs" / "completions")) == ["00000", "00001"]
