"""A rubric reply is untrusted input: ``parse_score`` accepts one JSON object with a ``score``
(a number 0-5) and a non-empty ``reason``, and names the field of anything else (prose without
JSON, a score of 7 or "高", a missing reason), so the document becomes a counted failure, not a label.

The object may sit inside prose or a Markdown code fence (models add them); the first object that
has a ``score`` key is the answer. Nothing of the reply is executed or trusted beyond these two fields.
"""

from __future__ import annotations

import json
import math
import re

MAX_REASON = 300
_OBJECT = re.compile(r"\{[^{}]*\}", re.S)


class BadScore(ValueError):
    def __init__(self, field: str, why: str):
        self.field = field
        super().__init__(f"reply field {field}: {why}")


def _objects(text: str):
    try:
        whole = json.loads(text.strip().removeprefix("```json").removeprefix("```").removesuffix("```"))
        if isinstance(whole, dict):
            yield whole
    except ValueError:
        pass
    for m in _OBJECT.finditer(text):
        try:
            obj = json.loads(m.group(0))
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj


def parse_score(text) -> tuple[float, str]:
    """(score, reason) of a reply; ``BadScore`` naming the field otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise BadScore("reply", "empty")
    obj = next((o for o in _objects(text) if "score" in o), None)
    if obj is None:
        shown = " ".join(text.split())[:60]
        raise BadScore("score", f"no JSON object with a score in the reply {shown!r}")
    score = obj["score"]
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise BadScore("score", f"{score!r} is not a number 0-5")
    if not 0 <= score <= 5:
        raise BadScore("score", f"{score} is outside 0-5")
    reason = obj.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise BadScore("reason", f"{reason!r} is not a non-empty string")
    return float(score), " ".join(reason.split())[:MAX_REASON]
