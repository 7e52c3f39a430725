"""datatrove's local executor, made to fail cleanly when a task raises.

With several workers, a task that raised made multiprocess's ``Pool.terminate()`` wait forever
on the pool's task-handler thread. That thread was still writing the next task into a pipe
that no worker would read again: the whole pickled pipeline (lexicon, decontamination index),
megabytes per task. Under load, a build with one unusable input then hung instead of failing:
1 run in 3 here with both cores busy, and 1 in 4 on another try.

``LocalExecutor`` keeps the pool out of it. A failing task writes ``failures/<rank>.json``
into the logging folder and returns normally. Tasks that start after it skip themselves.
``run()`` then raises the first failure: a :class:`CumedError` (one line, the input's own
message) for what readers and steps raise about their input (``ValueError``, ``OSError``),
a ``RuntimeError`` for anything else (a bug: the traceback is in the task log). Failed and
skipped ranks are not marked complete, so a re-run resumes exactly them.
"""

from __future__ import annotations

import json

from datatrove.executor import LocalPipelineExecutor
from datatrove.utils.stats import PipelineStats

from .errors import CumedError

FAILURES = "failures"


class LocalExecutor(LocalPipelineExecutor):
    def _launch_run_for_rank(self, rank: int, ranks_q, completed=None, completed_lock=None) -> PipelineStats:
        if self.failures():
            return PipelineStats()
        try:
            return super()._launch_run_for_rank(rank, ranks_q, completed, completed_lock)
        except Exception as e:  # noqa: BLE001 - reported by run(), after the pool has ended
            with self.logging_dir.open(f"{FAILURES}/{rank:05d}.json", "w") as f:
                json.dump({"rank": rank, "type": type(e).__name__, "message": str(e),
                           "input_error": isinstance(e, (ValueError, OSError))}, f)
            return PipelineStats()

    def failures(self) -> list[dict]:
        if not self.logging_dir.isdir(FAILURES):
            return []
        out = []
        for name in sorted(self.logging_dir.list_files(FAILURES)):
            with self.logging_dir.open(name) as f:
                out.append(json.load(f))
        return out

    def run(self):
        if self.logging_dir.isdir(FAILURES):  # from an earlier run, whose ranks now run again
            self.logging_dir.rm(FAILURES, recursive=True)
        stats = super().run()
        failed = self.failures()
        if failed:
            first = failed[0]
            where = f"task {first['rank']} of {self.world_size}; its log: {self.logging_dir.path}/logs/task_{first['rank']:05d}.log"
            if first["input_error"]:
                raise CumedError(f"{first['message']} ({where})")
            raise RuntimeError(f"{first['type']}: {first['message']} ({where})")
        return stats
