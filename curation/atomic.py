"""Write a small file so that readers see either the old content or the new, never half."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: str | os.PathLike, obj) -> None:
    """UTF-8 JSON without ASCII escaping (Chinese stays readable), replaced atomically."""
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=1))
