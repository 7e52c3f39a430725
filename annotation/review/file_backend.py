"""The embedded default backend: files in Label Studio's own import and export formats.

``push`` writes ``tasks.json`` (import these into any Label Studio project) and ``config.xml``
(its labeling config) into the batch folder; ``pull`` reads a Label Studio JSON export that the
annotators' server produced. No server is needed on this side.
"""

from __future__ import annotations

import json
from pathlib import Path

from cumed.atomic import write_text as _write_atomic
from cumed.errors import CumedError

from annotation.review.backend import ReviewBackend


class FileBackend(ReviewBackend):
    name = "file"

    def __init__(self, batch_dir: Path):
        self.batch_dir = Path(batch_dir)

    def push(self, batch_id: str, dataset: str, tasks: list[dict], label_config: str) -> dict:
        tasks_path = self.batch_dir / "tasks.json"
        config_path = self.batch_dir / "config.xml"
        # durable: the batch is marked pushed right after, so these must outlive a power cut too
        _write_atomic(tasks_path, json.dumps(tasks, ensure_ascii=False, indent=1), durable=True)
        _write_atomic(config_path, label_config, durable=True)
        return {"pushed": len(tasks), "skipped": 0, "tasks_file": str(tasks_path), "config_file": str(config_path)}

    def pull(self, batch_id: str, dataset: str, source: str | None = None) -> list[dict]:
        if not source:
            raise CumedError(
                f"the file backend pulls from a Label Studio export: cumed review pull {batch_id} --from EXPORT.json "
                f"(Label Studio: project > Export > JSON)"
            )
        return read_export(Path(source))


def read_export(path: Path) -> list[dict]:
    """A Label Studio JSON export (a list of tasks), with errors that name the file and the place."""
    if not path.is_file():
        raise CumedError(f"export file {path} not found; export the project as JSON from Label Studio")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CumedError(f"export {path} is not UTF-8 (byte {e.start}); re-export it from Label Studio as JSON") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CumedError(
            f"export {path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}; "
            f"the file is truncated or not a JSON export: re-export it (Export > JSON)"
        ) from e
    if isinstance(data, dict) and "tasks" in data:
        data = data["tasks"]
    if not isinstance(data, list):
        raise CumedError(f"export {path} holds a {type(data).__name__}, expected a list of tasks (Label Studio JSON export)")
    for i, task in enumerate(data):
        if not isinstance(task, dict) or "data" not in task:
            raise CumedError(f"export {path}: item {i} is not a Label Studio task (no 'data'); use the JSON export format")
    return data
