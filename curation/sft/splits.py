"""Near-duplicate-aware train/validation/test splits.

Dialogues are clustered by their user turns (the prompt): ``find_duplicates`` at a looser
threshold than removal (``cluster_threshold``, default 0.6) links each dialogue to the kept
dialogue it nearly copies; that keeper's id is the cluster id. The split of a dialogue is a
stable hash of its cluster id (sha1 of ``seed`` + cluster id, as a fraction in [0, 1)), so a
prompt and its near-copies always land in the same split, and a rebuild with more data keeps
every old dialogue's split unless its cluster changes.

Why cluster on the prompt only: two consultations asking the same question with different
doctors' answers are distinct training rows (dedup keeps both), but one in train and one in
test would let a model score by recall of the prompt.
"""

from __future__ import annotations

import hashlib

from curation.dedup import find_duplicates

SPLITS = ("train", "validation", "test")


def clusters(items: list[tuple[str, str]], threshold: float = 0.6, **params) -> dict[str, str]:
    """{id: cluster id} for (id, prompt text) items; a keeper is its own cluster."""
    out = {i: i for i, _ in items}
    for d in find_duplicates(items, threshold=threshold, **params):
        out[d.id] = d.duplicate_of
    return out


def split_of(cluster_id: str, validation: float = 0.05, test: float = 0.05, seed: str = "cumed-sft") -> str:
    if validation < 0 or test < 0 or validation + test >= 1:
        raise ValueError(f"split fractions validation={validation}, test={test} must be >= 0 and sum to < 1")
    h = int.from_bytes(hashlib.sha1(f"{seed}\x1f{cluster_id}".encode()).digest()[:8], "big") / 2**64
    if h < test:
        return "test"
    if h < test + validation:
        return "validation"
    return "train"
