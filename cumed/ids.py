"""Stable record ids: the same input record gives the same id on every run, so review decisions,
dedup references and decontamination hits survive rebuilds."""

from __future__ import annotations

import hashlib


def stable_id(source: str, *key: object) -> str:
    """Id of a record from its source name and a key that is stable within the source.

    The key is usually (relative file path, record index) or a native id from the source.
    16 hex chars of sha1 keep ids short while collisions stay negligible (2^64 space).
    """
    h = hashlib.sha1(source.encode("utf-8"))
    for part in key:
        h.update(b"\x1f")
        h.update(str(part).encode("utf-8"))
    return f"{source}-{h.hexdigest()[:16]}"
