"""A model's reply is untrusted input: ``check_reply`` accepts one well-formed chat completion
and names the field of anything else (a proxy's HTML error page, a reply without choices, a
non-string content, absurd token counts), so it becomes a counted failure, not a row."""

from __future__ import annotations

import json

MAX_TOKENS_SANE = 10_000_000


class BadReply(ValueError):
    def __init__(self, field: str, why: str):
        self.field = field
        super().__init__(f"reply field {field}: {why}")


def _count(usage: dict, key: str, limit: int | None) -> int:
    v = usage.get(key)
    if not isinstance(v, int) or isinstance(v, bool):
        raise BadReply(f"usage.{key}", f"{v!r} is not an integer")
    if not 0 <= v <= MAX_TOKENS_SANE:
        raise BadReply(f"usage.{key}", f"{v} is outside 0..{MAX_TOKENS_SANE}")
    if limit is not None and v > limit:
        raise BadReply(f"usage.{key}", f"{v} exceeds the request's max_tokens {limit}")
    return v


def check_reply(body: bytes | str, max_tokens: int | None = None) -> dict:
    """The reply normalised to ``{choices: [{message: {content}, finish_reason}], usage}``."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadReply("body", f"not JSON: {str(body[:80])!r}") from None
    if not isinstance(data, dict):
        raise BadReply("body", f"a JSON {type(data).__name__}, not an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise BadReply("choices", "missing or empty")
    choice = choices[0]
    if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
        raise BadReply("choices[0].message", "missing or not an object")
    content = choice["message"].get("content")
    if not isinstance(content, str):
        raise BadReply("choices[0].message.content", f"{type(content).__name__}, not a string")
    finish = choice.get("finish_reason")
    if not isinstance(finish, str) or not 0 < len(finish) <= 32:
        raise BadReply("choices[0].finish_reason", f"{finish!r} is not a short string")
    usage = data.get("usage")
    if not isinstance(usage, dict):
        raise BadReply("usage", "missing or not an object")
    prompt_tokens = _count(usage, "prompt_tokens", None)
    completion_tokens = _count(usage, "completion_tokens", max_tokens)
    return {"choices": [{"message": {"content": content}, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}
