"""Running one datatrove stage: which executor (local processes or a Ray cluster), quiet logs,
fewer allocator and collector pauses, and a clear error when a task failed.

The logging folder (completions, task logs, stats) may be on object storage, like the rest of
the work folder (``curation.workfolder``); every task runs with a private scratch folder.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from datatrove.executor.ray import RayPipelineExecutor  # imports Ray only when it runs

from cumed.errors import CumedError
from cumed.process import pipeline_gc
from curation.build.allocators import TunedAllocators, tune_allocators
from curation.build.progress import StageProgress
from curation.build.task_gc import CollectPerTask
from curation.workfolder import ScratchPerTask, folder, names, read_text


class RayExecutor(ScratchPerTask, TunedAllocators, CollectPerTask, RayPipelineExecutor):
    """datatrove's Ray executor, each task with a private scratch folder (its task log too), the
    build's allocator settings (``allocators``) and its garbage collected when it ends (``task_gc``)."""


def run_stage(label: str, pipeline: list, tasks: int, workers: int, executor: str, logging_dir: str | Path,
              progress: bool) -> None:
    """Run ``pipeline`` as ``tasks`` tasks; completed tasks (from an earlier, killed run) are skipped."""
    with StageProgress(label, logging_dir, tasks, progress):
        _run(make_executor(executor, pipeline, tasks, workers, logging_dir))
    check_stage(logging_dir, tasks, label.split(": ", 1)[-1])


def _run(executor) -> None:
    tune_allocators()
    with pipeline_gc():
        executor.run()


def make_executor(kind: str, pipeline: list, tasks: int, workers: int, logging_dir: str | Path):
    if kind == "local":
        from curation.build.local_executor import LocalExecutor

        return LocalExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=str(logging_dir),
                             start_method="fork")
    if kind == "ray":
        try:
            import ray
        except ImportError as e:
            raise CumedError("--executor ray needs Ray: pip install 'cumed[ray]'") from e
        if not ray.is_initialized():
            ray.init(num_cpus=max(workers, 1), include_dashboard=False, log_to_driver=False)
        # mem_per_cpu_gb x cpus_per_task must stay below Ray's memory resource or tasks wait forever.
        mem = ray.cluster_resources().get("memory", 2 * 2**30) / 2**30
        return RayExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=str(logging_dir),
                           cpus_per_task=1, mem_per_cpu_gb=max(0.1, min(2.0, mem / max(workers, 1) * 0.5)))
    raise CumedError(f"unknown executor {kind!r}; use local or ray (Slurm: see README)")


def quiet_datatrove(level: str = "ERROR") -> None:
    """datatrove prints per-task INFO logs and a stats dump to stderr; keep them in the task log
    files (``.cache/builds/.../logs``) and show only errors, so our progress bars stay readable."""
    import sys

    import datatrove.executor.base as executor_base
    import datatrove.utils.logging as dt_logging
    from loguru import logger

    if getattr(dt_logging, "_cumed_quiet", None) == level:
        return
    fmt = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}"

    def one_line(record) -> str:
        # a callable format gets no traceback appended: the task log file keeps the traceback,
        # the terminal gets the message (and cumed's own one-line error after it)
        return "{level: <8} | {name}:{function}:{line} - {message}\n"

    def add_task_logger(logging_dir, rank, local_rank=0, node_rank=-1):
        # Same files as datatrove's own (logs/task_XXXXX.log, DEBUG); stderr only for errors.
        logger.remove()
        logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
        logger.add(sys.stderr, level=level, format=one_line)
        logger.add(logfile, level="DEBUG", format=fmt, colorize=False)
        logger.info(f"Launching pipeline for {rank=}")
        return logfile

    def setup_default_logger():
        logger.remove()
        logger.add(sys.stderr, level=level, format=one_line)

    dt_logging.add_task_logger = executor_base.add_task_logger = add_task_logger
    try:
        import datatrove.executor.ray as executor_ray

        executor_ray.add_task_logger = add_task_logger
    except ImportError:
        pass
    dt_logging.setup_default_logger = setup_default_logger
    _cache_loguru_lib_dirs()
    setup_default_logger()
    dt_logging._cumed_quiet = level


def _cache_loguru_lib_dirs() -> None:
    """loguru lists the interpreter's library folders (sysconfig, ~4 ms) on every ``logger.add``,
    and datatrove adds sinks for every task: 0.15 s of a 3.5 s near-duplicate stage at 8 shards.
    The list only marks library frames in tracebacks; compute it once."""
    try:
        from loguru._better_exceptions import ExceptionFormatter
    except ImportError:  # pragma: no cover - loguru's internals moved; only slower
        return
    get = getattr(ExceptionFormatter, "_get_lib_dirs", None)
    if get is not None and not hasattr(get, "cache_info"):
        ExceptionFormatter._get_lib_dirs = staticmethod(functools.lru_cache(maxsize=1)(get))


def check_stage(logging_dir: str | Path, tasks: int, label: str) -> None:
    df = folder(logging_dir)
    done = len(names(df, "*", "completions"))
    if done < tasks:
        cause = _last_exception(df)
        raise CumedError(
            f"stage '{label}' finished {done} of {tasks} tasks"
            + (f": {cause}" if cause else "")
            + f"; task logs in {str(logging_dir).rstrip('/')}/logs; fix the cause and re-run the same command to "
              "resume (completed tasks are skipped)"
        )


def _last_exception(df) -> str:
    """The exception line of a failed task's log, so the user sees the cause, not just a count."""
    for f in names(df, "*.log", "logs"):
        lines = read_text(df, f).splitlines()
        for line in reversed(lines):
            m = re.match(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$", line.strip())
            if m:
                return f"{m.group(1)}: {m.group(2)}"
    return ""


