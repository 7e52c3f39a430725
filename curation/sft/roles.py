"""Role markers -> ``system|user|assistant``, turns written inline, and dialogue validation.

Every source names its speakers differently: ShareGPT ``human``/``gpt``, BianQue ``病人：``/
``医生：`` inside one string, Huatuo's liver_cancer ``<user>:``/``<bot>:``, CMtMedQA pairs.
``normalize_role`` maps any of them (``ROLE_ALIASES``) to the three contract roles and returns
``None`` for a marker it does not know (the dialogue is then removed with ``unknown_role``,
never guessed).

``split_inline(text)`` cuts a string with inline markers into turns. Chinese markers
(``病人`` ``患者`` ``用户`` ``医生``, followed by ``：`` or ``:``) count only at the start of the
string or of a line, so a patient writing "我问了医生：要不要手术" is not split; ``<user>:`` /
``<bot>:`` count anywhere (they are never natural text).

``validate(messages)`` returns ``None`` for a valid dialogue or the reason it is invalid:
an optional system turn, then user/assistant alternating, starting with user and ending with
assistant, no empty turn. Invalid dialogues are removed with that reason and never repaired
(dropping or merging turns would change who said what).
"""

from __future__ import annotations

import re

ROLES = ("system", "user", "assistant")

ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "system": ("system", "系统", "sys"),
    "user": ("user", "human", "<user>", "病人", "患者", "用户", "提问者", "问", "patient", "prompter"),
    "assistant": ("assistant", "gpt", "bot", "<bot>", "医生", "doctor", "答", "chatgpt", "model", "大夫"),
}
_ALIAS = {a.lower(): role for role, aliases in ROLE_ALIASES.items() for a in aliases}

# inline markers: Chinese speaker names at a line start, <user>/<bot> anywhere
INLINE_MARKER = re.compile(r"(?:(?<=\n)|^)[ \t\u3000]*(病人|患者|用户|医生)[ \t]*[：:]|<(user|bot|system)>[ \t]*[：:]?")


def normalize_role(marker) -> str | None:
    """``"病人"`` -> ``"user"``, ``"gpt"`` -> ``"assistant"``...; ``None`` for an unknown marker."""
    if marker is None:
        return None
    key = str(marker).strip().rstrip("：:").strip().lower()
    return _ALIAS.get(key)


class InlineError(ValueError):
    """Text that does not start with a role marker (content nobody is said to have written)."""


def split_inline(text: str) -> list[tuple[str, str]]:
    """``"病人：头疼\\n医生：多喝水"`` -> ``[("病人", "头疼"), ("医生", "多喝水")]``.

    Raw markers are returned (``normalize_role`` maps them). Raises ``InlineError`` when text
    precedes the first marker or no marker is found.
    """
    matches = list(INLINE_MARKER.finditer(text))
    if not matches:
        raise InlineError(f"no role marker (病人/患者/用户/医生 at a line start, <user>/<bot>) in {text[:40]!r}")
    head = text[: matches[0].start()].strip()
    if head:
        raise InlineError(f"text before the first role marker: {head[:40]!r}")
    out = []
    for m, nxt in zip(matches, matches[1:] + [None]):
        marker = m.group(1) or f"<{m.group(2)}>"
        end = nxt.start() if nxt is not None else len(text)
        out.append((marker, text[m.end() : end].strip()))
    return out


def validate(messages: list[dict]) -> str | None:
    """``None`` when valid, else ``"<code>: <detail>"`` (turn numbers are 1-based)."""
    if not messages:
        return "no_turns: the record has no turns"
    for i, m in enumerate(messages, 1):
        if m.get("role") not in ROLES:
            return f"unknown_role: turn {i} has role marker {m.get('raw_role', m.get('role'))!r}"
    for i, m in enumerate(messages, 1):
        if not (m.get("content") or "").strip():
            return f"empty_turn: turn {i} ({m['role']}) is empty"
    body = messages[1:] if messages[0]["role"] == "system" else messages
    for i, m in enumerate(messages[1:], 2):
        if m["role"] == "system":
            return f"misplaced_system: turn {i} is a system turn (only turn 1 may be)"
    if not body:
        return "no_turns: only a system turn"
    offset = len(messages) - len(body)
    if body[0]["role"] != "user":
        return f"starts_with_assistant: turn {offset + 1} is assistant, expected user"
    for i in range(1, len(body)):
        if body[i]["role"] == body[i - 1]["role"]:
            return f"not_alternating: turns {offset + i} and {offset + i + 1} are both {body[i]['role']}"
    if body[-1]["role"] != "assistant":
        return f"ends_with_user: last turn {len(messages)} is user (no answer)"
    return None


def dialogue_text(messages: list[dict]) -> str:
    """All turn contents joined by newlines: the text that dedup and decontamination compare."""
    return "\n".join(m.get("content") or "" for m in messages)


def user_text(messages: list[dict]) -> str:
    """The user turns only: what a prompt near-copy shares (used to cluster for splits)."""
    return "\n".join(m.get("content") or "" for m in messages if m.get("role") == "user")
