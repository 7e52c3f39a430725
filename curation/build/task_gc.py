"""A task's garbage goes when the task ends, not at the collector's next full pass.

datatrove copies the pipeline for every task, and what a task leaves in reference cycles is
freed only by the cyclic collector. Its full pass runs when the objects that survived the younger
passes have grown by a quarter, and ``cumed.process.pipeline_gc`` makes the youngest pass rarer
still: it counts Python objects, not bytes, while a few objects can hold megabytes of arrays
(numba's, which ``tracemalloc`` does not see). A pool worker that ran 20 stage-A tasks of a 10M
build held 2.23 GB at the end, ~75 MB more per task: ``Features`` that referred to themselves
kept their chunk's code points (mended in ``filters/_text.py``). One full collection after each
task (tens of ms, against seconds of work) bounds what any such cycle can hold to one task's.
"""

from __future__ import annotations

import gc


class CollectPerTask:
    """Executor mixin: a full garbage collection after every task, failed or not."""

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        try:
            return super()._run_for_rank(rank, local_rank, node_rank)
        finally:
            gc.collect()
