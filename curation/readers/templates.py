"""Tiny text templates that turn a record (CSV row, JSON object) into readable text.

``{field}`` is replaced by the field's value, ``{a.b.0}`` follows a dotted path (dict keys, list
indexes), ``{.}`` is the record itself; ``{{`` and ``}}`` are literal braces. Values are
stripped; ``None`` is empty; a list is joined with ``list_sep`` (one item per line by default,
nested lists flattened the same way); a dict becomes ``key：value`` lines.

``each`` renders the items of a list field with their own template, e.g. a dialogue history
``[[q, a], ...]`` with ``each: {history: "患者：{0}\\n医生：{1}"}``.

Not ``str.format`` on purpose: dotted paths into JSON, list joining, and errors that name the
missing field and the available ones.
"""

from __future__ import annotations

import re

_FIELD = re.compile(r"\{([^{}]*)\}")
_LBRACE, _RBRACE = "\x00<", "\x00>"


class MissingField(KeyError):
    """A template field that the record does not have."""

    def __init__(self, path: str, available: list[str]):
        super().__init__(path)
        self.path = path
        self.available = available

    def __str__(self) -> str:
        avail = ", ".join(self.available) if self.available else "none"
        return f"field {self.path!r} missing (record has: {avail})"


def fields(template: str) -> list[str]:
    """The field paths a template uses, in order."""
    t = template.replace("{{", "").replace("}}", "")
    return [m.group(1).strip() for m in _FIELD.finditer(t)]


def lookup(record, path: str):
    """Value at a dotted path; raises ``MissingField``. A key containing dots is tried whole first."""
    path = path.strip()
    if path in ("", "."):
        return record
    if isinstance(record, dict) and path in record:
        return record[path]
    cur = record
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.lstrip("-").isdigit() and -len(cur) <= int(part) < len(cur):
            cur = cur[int(part)]
        else:
            avail = list(cur.keys()) if isinstance(cur, dict) else ([f"0..{len(cur) - 1}"] if isinstance(cur, list) else [])
            raise MissingField(path, [str(a) for a in avail])
    return cur


def has(record, path: str) -> bool:
    try:
        return lookup(record, path) is not None
    except MissingField:
        return False


def as_text(value, list_sep: str = "\n") -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, (list, tuple)):
        parts = (as_text(v, list_sep) for v in value)
        return list_sep.join(p for p in parts if p)
    if isinstance(value, dict):
        return "\n".join(f"{k}：{as_text(v, '、')}" for k, v in value.items() if as_text(v, "、"))
    return str(value)


def render(template: str, record, list_sep: str = "\n", each: dict[str, str] | None = None) -> str:
    """Fill ``template`` from ``record``; raises ``MissingField`` naming the field."""
    each = each or {}

    def sub(m: re.Match) -> str:
        path = m.group(1).strip()
        value = lookup(record, path)
        if path in each and isinstance(value, list):
            items = (render(each[path], item, list_sep) for item in value)
            return list_sep.join(i for i in items if i)
        return as_text(value, list_sep)

    t = template.replace("{{", _LBRACE).replace("}}", _RBRACE)
    out = _FIELD.sub(sub, t).replace(_LBRACE, "{").replace(_RBRACE, "}")
    return out.strip()
