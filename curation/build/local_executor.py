"""datatrove's local executor, made to fail cleanly when a task raises.

With several workers, a task that raised made multiprocess's ``Pool.terminate()`` wait forever
on the pool's task-handler thread. That thread was still writing the next task into a pipe
that no worker would read again: the whole pickled pipeline (lexicon, decontamination index),
megabytes per task. Under load, a build with one unusable input then hung instead of failing:
1 run in 3 here with both cores busy, and 1 in 4 on another try.

``LocalExecutor`` keeps the exception out of the pool. datatrove has already written it to the
task's log. The failing task leaves a ``failed`` marker in the logging folder and returns
normally; tasks that start after it skip themselves. Neither is marked complete, so the stage
ends incomplete, and the build's stage check (``build._check_stage``, the same one that reports
a Ray stage) raises one line with the cause from the log. A re-run resumes exactly those ranks.

Workers die with their build. A build killed with SIGKILL (the OOM killer, ``kill -9``, a
scheduler's hard stop) cannot stop its pool, and the forked workers lived on, asleep, holding
~95 MB each: the fault-injection test left 16 behind per run. Each worker now asks Linux to
SIGKILL it when its parent dies (``PR_SET_PDEATHSIG``; the parent is the driver, or
datatrove's forkserver, which exits with the driver); the driver itself is left alone, so a build
started from a shell that exits keeps running.

One worker runs its tasks in the driver without datatrove's ``multiprocess.Manager``: that is a
server process forked from the driver for each stage, only to hand out one local rank. Forking a
driver that holds ~1 GB, and then copying every page the driver writes while the fork lives (the
whole stage): over the six stages of a 1M-record build, ~340,000 page faults (~1.3 GB copied) and
~1 s of system time (``BENCHMARKS.md``).

Every task gets a private scratch folder, deleted when it ends (``curation.workfolder``), and a
full garbage collection when it ends (``task_gc``).
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import sys
from copy import deepcopy

from datatrove.executor import LocalPipelineExecutor
from datatrove.utils.stats import PipelineStats
from loguru import logger

from curation.build.allocators import TunedAllocators
from curation.build.task_gc import CollectPerTask
from curation.workfolder import ScratchPerTask

FAILED = "failed"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies (Linux; elsewhere a no-op).

    The parent is the driver (fork) or datatrove's forkserver (its default), which exits when the
    driver does; either way the worker goes with the build."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request: nobody will send the signal
        os._exit(1)


_ARMED = False


def arm_forked_workers() -> None:
    """Every process this one forks from now on dies with it. At fork, not in the task: a worker
    killed in waiting (the pool's idle workers, before their first task) would otherwise live on,
    blocked on a task pipe whose write end it holds itself. Once per process."""
    global _ARMED
    if not _ARMED:
        os.register_at_fork(after_in_child=die_with_parent)
        _ARMED = True


class LocalExecutor(ScratchPerTask, TunedAllocators, CollectPerTask, LocalPipelineExecutor):
    def _launch_run_for_rank(self, rank: int, ranks_q, completed=None, completed_lock=None) -> PipelineStats:
        if self.logging_dir.exists(FAILED):
            return PipelineStats()
        try:
            return super()._launch_run_for_rank(rank, ranks_q, completed, completed_lock)
        except Exception:  # noqa: BLE001 - logged by datatrove; reported by the stage check
            with self.logging_dir.open(FAILED, "w") as f:
                f.write(f"{rank}\n")
            return PipelineStats()

    def run(self):
        arm_forked_workers()
        if self.logging_dir.exists(FAILED):  # from an earlier run, whose incomplete ranks now run again
            self.logging_dir.rm(FAILED)
        if self.workers == 1 and not self.depends:
            return self._run_in_driver()
        return super().run()

    def _run_in_driver(self) -> PipelineStats | None:
        """datatrove's ``run`` for one worker (the tasks one after the other, each with a fresh
        copy of the pipeline; skip the completed ones; merged stats in ``stats.json``), with a
        plain queue of its one local rank instead of a ``multiprocess.Manager``'s."""
        self._launched = True
        ranks = range(self.local_rank_offset, self.local_rank_offset + self.local_tasks)
        if all(map(self.is_rank_completed, ranks)):
            logger.info(f"Not doing anything as all {self.local_tasks} tasks have already been completed.")
            return None
        self.save_executor_as_json()
        local_ranks: queue.SimpleQueue = queue.SimpleQueue()
        local_ranks.put(0)
        pipeline, stats = self.pipeline, []
        for rank in self.get_incomplete_ranks(ranks):
            self.pipeline = deepcopy(pipeline)
            stats.append(self._launch_run_for_rank(rank, local_ranks))
        merged = sum(stats, start=PipelineStats())
        with self.logging_dir.open("stats.json", "wt") as f:
            merged.save_to_disk(f)
        logger.success(merged.get_repr(f"All {self.local_tasks} tasks"))
        return merged
