"""Ranking tasks: a prompt with K named responses -> one Label Studio task.

Annotators never see model names: each response gets an opaque id ``r`` + 6 hex digits of
sha256(seed, prompt_id, key) (the key is the model name, or for generated answers the responses
row's own id, so two samples of one model can share a task) and the display order is a shuffle
seeded by (seed, prompt_id), recorded in the task so position bias can be measured later. The
mapping response_id -> model stays local (batch state) and in the rankings dataset.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from cumed.errors import CumedError

from annotation.ranking.config import rubric_html

MIN_K, MAX_K = 2, 8


@dataclass
class Candidate:
    model: str
    text: str
    score: float | None = None
    scores: dict = field(default_factory=dict)
    key: str = ""  # what the id is hashed from and what must not repeat in a task; "" = the model

    @property
    def source(self) -> str:
        return self.key or self.model


def response_id(seed: int | str, prompt_id: str, model: str, taken: set[str] | None = None) -> str:
    """``r`` + 6 hex of a seeded hash; re-salted on the (rare) collision within one task."""
    salt = 0
    while True:
        h = hashlib.sha256(f"{seed}\x1f{prompt_id}\x1f{model}\x1f{salt}".encode()).hexdigest()[:6]
        rid = f"r{h}"
        if not taken or rid not in taken:
            return rid
        salt += 1


def task_seed(seed: int | str, prompt_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\x1forder\x1f{prompt_id}".encode()).digest()[:8], "big") >> 1  # fits int64


def make_task(prompt_id: str, prompt: str, candidates: list[Candidate], seed: int | str = 0,
              batch: str = "", dataset_ref: str = "") -> tuple[dict, dict]:
    """(task in Label Studio import format, local record {response_id: model, order, seed})."""
    if not MIN_K <= len(candidates) <= MAX_K:
        raise CumedError(f"prompt {prompt_id}: {len(candidates)} responses; a ranking task needs {MIN_K}..{MAX_K}")
    sources = [c.source for c in candidates]
    if len(set(sources)) != len(sources):
        raise CumedError(f"prompt {prompt_id}: response sources repeat ({sources}); name each source once")
    taken: set[str] = set()
    ids = []
    for c in candidates:
        rid = response_id(seed, prompt_id, c.source, taken)
        taken.add(rid)
        ids.append(rid)
    tseed = task_seed(seed, prompt_id)
    order = list(range(len(candidates)))
    random.Random(tseed).shuffle(order)
    items = [{"id": ids[i], "title": f"回答 {chr(65 + pos)} Answer {chr(65 + pos)}", "body": candidates[i].text}
             for pos, i in enumerate(order)]
    # doc_id = prompt_id: the Label Studio backend keys tasks by data.doc_id (re-push adds only new ones)
    task = {"data": {"prompt_id": prompt_id, "doc_id": prompt_id, "prompt": prompt, "responses": items, "rubric": rubric_html(),
                     "batch": batch, "dataset_ref": dataset_ref}}
    local = {"prompt_id": prompt_id, "prompt": prompt, "seed": tseed, "order": [ids[i] for i in order],
             "responses": [{"response_id": ids[i], "text": c.text, "model": c.model} | ({"source_id": c.key} if c.key else {})
                           for i, c in enumerate(candidates)]}
    return task, local
