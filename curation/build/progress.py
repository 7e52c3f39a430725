"""A progress bar over a datatrove stage, fed by polling its completions folder (tasks run in
other processes; the folder is what they all write)."""

from __future__ import annotations

import threading
from pathlib import Path


class StageProgress:
    """A rich progress bar over a datatrove stage, fed by polling its completions folder."""

    def __init__(self, label: str, logging_dir: Path, tasks: int, enabled: bool):
        self.label, self.dir, self.tasks, self.enabled = label, logging_dir / "completions", tasks, enabled
        self._stop = threading.Event()

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TimeElapsedColumn(), transient=False)
            self._p.start()
            self._t = self._p.add_task(self.label, total=self.tasks)
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _count(self) -> int:
        return len(list(self.dir.glob("*"))) if self.dir.is_dir() else 0

    def _poll(self):
        while not self._stop.wait(0.5):
            self._p.update(self._t, completed=self._count())

    def __exit__(self, *exc):
        if self.enabled:
            self._stop.set()
            self._thread.join()
            self._p.update(self._t, completed=self._count())
            self._p.stop()




def print_steps(name: str, steps: list[dict]) -> None:
    """The resolved step list, before anything runs: the build does these and nothing else
    (``curation.build.steps.resolved_steps``)."""
    from rich.console import Console

    def fmt(entry: dict) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in entry["options"].items())
        return f"{entry['step']}({opts})" if opts else entry["step"]

    listed = "; ".join(fmt(e) for e in steps) if steps else "none (read and publish only)"
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"{name}: steps: {listed}", markup=False)
