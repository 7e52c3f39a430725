"""Every task runs with the build's allocator settings, wherever its process came from.

``cumed.process.reuse_freed_memory`` (glibc keeps freed memory) and ``arrow_on_glibc`` (Arrow's
buffers from that heap) are process-wide. The driver sets them before a stage, and the local
executor's workers, forked from it, inherit them; a Ray worker is started by Ray, not forked from
the driver, so each task sets them in its own process (once: later calls return at once).
"""

from __future__ import annotations

from cumed.process import arrow_on_glibc, reuse_freed_memory


def tune_allocators() -> None:
    reuse_freed_memory()
    arrow_on_glibc()


class TunedAllocators:
    """Executor mixin: the build's allocator settings in the process that runs a task."""

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        tune_allocators()
        return super()._run_for_rank(rank, local_rank, node_rank)
