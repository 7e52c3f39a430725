"""Local state of annotation batches (review and ranking), kept beside the datasets.

``<store>/<folder>/<dataset>/`` holds a ``ledger.json`` (item id -> batch id for every item ever
queued) and one folder per batch named ``<dataset>.<letter><NNN>`` with its ``batch.json`` and a
JSONL file of validated results. The folder name starts with ``_``, which is not a valid dataset
name, so store listings ignore it. Subclasses say which folder, letter and result type.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar

from cumed.atomic import write_json
from cumed.errors import CumedError
from cumed.store import Store


class BatchState:
    folder: ClassVar[str]  # "_review"
    letter: ClassVar[str]  # "r": batch ids look like cumed-pretrain.r001
    what: ClassVar[str]  # "review", for error messages
    push_command: ClassVar[str]  # "review push", which prints batch ids
    results_file: ClassVar[str]  # "annotations.jsonl"
    result_type: ClassVar[type]  # built from each JSON line as result_type(**line)

    def __init__(self, store: Store, dataset: str):
        self.store, self.dataset = store, dataset
        self.root = store.root / self.folder / dataset
        self.root.mkdir(parents=True, exist_ok=True)

    @classmethod
    def batch_re(cls) -> re.Pattern:
        return re.compile(rf"^(?P<dataset>[a-z0-9][a-z0-9._-]*)\.{cls.letter}(?P<n>[0-9]{{3,}})$")

    @classmethod
    def for_batch(cls, store: Store, batch_id: str):
        m = cls.batch_re().match(batch_id or "")
        if not m:
            raise CumedError(f"bad {cls.what} batch id {batch_id!r}; batch ids look like "
                             f"cumed-pretrain.{cls.letter}001 (printed by {cls.push_command})")
        state = cls(store, m.group("dataset"))
        if not (state.root / batch_id / "batch.json").is_file():
            known = ", ".join(state.batches()) or "none"
            raise CumedError(f"no {cls.what} batch {batch_id} in {state.root}; batches: {known}")
        return state

    def batches(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "batch.json").is_file())

    def ledger(self) -> dict[str, str]:
        p = self.root / "ledger.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}

    def batch(self, batch_id: str) -> dict:
        return json.loads((self.root / batch_id / "batch.json").read_text(encoding="utf-8"))

    def save_batch(self, info: dict) -> None:
        (self.root / info["batch"]).mkdir(parents=True, exist_ok=True)
        write_json(self.root / info["batch"] / "batch.json", info)

    def results(self, batch_id: str) -> list[Any]:
        p: Path = self.root / batch_id / self.results_file
        if not p.is_file():
            return []
        lines = p.read_text(encoding="utf-8").splitlines()
        return [self.result_type(**json.loads(line)) for line in lines if line.strip()]

    def new_batch_id(self) -> str:
        pattern = self.batch_re()
        nums = [int(m.group("n")) for m in map(pattern.match, self.batches()) if m]
        return f"{self.dataset}.{self.letter}{(max(nums) + 1 if nums else 1):03d}"
