"""Every task runs with the build's allocator settings (``curation.build.allocators``), in a
fresh process each time: the settings are process-wide, and what a test proves must be that the
task set them, not that an earlier test did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_TASK = """
import json, sys
import pyarrow as pa
from datatrove.pipeline.base import PipelineStep
from curation.build.local_executor import LocalExecutor

class Record(PipelineStep):
    name = "record"
    def run(self, data=None, rank=0, world_size=1):
        with open(sys.argv[1] + f"/{rank}.json", "w") as f:
            json.dump(pa.default_memory_pool().backend_name, f)
        yield from data or []

print(json.dumps(pa.default_memory_pool().backend_name))
LocalExecutor(pipeline=[Record()], tasks=2, workers=1, logging_dir=sys.argv[1] + "/logs").run()
"""


def _run(tmp_path: Path, pool: str | None) -> tuple[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if pool:
        env["ARROW_DEFAULT_MEMORY_POOL"] = pool
    out = subprocess.run([sys.executable, "-c", _TASK, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    tasks = [(tmp_path / f"{r}.json").read_text() for r in range(2)]
    return out.stdout.strip().splitlines()[-1], tasks


def test_a_task_allocates_arrow_buffers_from_glibc(tmp_path):
    """pyarrow starts on mimalloc; a task of the executor runs on the system allocator (glibc)."""
    before, tasks = _run(tmp_path, None)
    assert before == '"mimalloc"'  # pyarrow's default on Linux wheels: the test would prove nothing else
    assert tasks == ['"system"', '"system"']


def test_the_users_arrow_pool_is_left_alone(tmp_path):
    _, tasks = _run(tmp_path, "jemalloc")
    assert tasks == ['"jemalloc"', '"jemalloc"']
