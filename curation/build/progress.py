"""A progress bar over a datatrove stage, fed by polling its completions folder (tasks run in
other processes, maybe other machines; the folder is what they all write: local or on object
storage, ``curation.workfolder``)."""

from __future__ import annotations

import threading
from pathlib import Path

from curation.workfolder import folder, local_root, names


class StageProgress:
    """A rich progress bar over a datatrove stage, fed by polling its completions folder."""

    def __init__(self, label: str, logging_dir: str | Path, tasks: int, enabled: bool):
        self.label, self.tasks, self.enabled = label, tasks, enabled
        self.logs = folder(logging_dir)
        self.every = 0.5 if local_root(self.logs) is not None else 2.0  # a listing of a bucket costs a request
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
        return len(names(self.logs, "*", "completions"))

    def _poll(self):
        while not self._stop.wait(self.every):
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
