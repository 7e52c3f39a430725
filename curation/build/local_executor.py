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
"""

from __future__ import annotations

from datatrove.executor import LocalPipelineExecutor
from datatrove.utils.stats import PipelineStats

FAILED = "failed"


class LocalExecutor(LocalPipelineExecutor):
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
        if self.logging_dir.exists(FAILED):  # from an earlier run, whose incomplete ranks now run again
            self.logging_dir.rm(FAILED)
        return super().run()
