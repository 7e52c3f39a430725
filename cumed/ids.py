"""Stable record ids: the same input record gives the same id on every run, so review decisions,
dedup references and decontamination hits survive rebuilds."""

from __future__ import annotations

import hashlib


def stable_id(source: str, *key: object) -> str:
    """Id of a record from its source name and a key that is stable within the source.

    The key is usually (relative file path, record index) or a native id from the source.
    16 hex chars of sha1 keep ids short while collisions stay negligible (2^64 space).
    """
    return _hex_id(source, "\x1f".join([source, *[str(part) for part in key]]).encode("utf-8"))


def id_prefix(source: str, *parts: object) -> bytes:
    """The bytes ``stable_id(source, *parts, key)`` hashes before ``key``. A reader makes it
    once per file and ``stable_id_after`` adds each record's key: joining and encoding the
    source and path again for every record was a quarter of the id's cost."""
    return "".join([f"{part}\x1f" for part in (source, *parts)]).encode("utf-8")


def stable_id_after(prefix: bytes, source: str, key: object) -> str:
    """``stable_id(source, *parts, key)``, given ``prefix = id_prefix(source, *parts)``."""
    return _hex_id(source, prefix + str(key).encode("utf-8"))


def stable_ids_after(prefix: bytes, source: str, keys: list) -> list[str]:
    """``[stable_id_after(prefix, source, key) for key in keys]``, for a reader's batch of records:
    the same strings with no Python call per key but the hash's (250k keys: 0.18 -> 0.15 s)."""
    sha1, head = hashlib.sha1, f"{source}-"
    return [head + sha1(prefix + str(key).encode("utf-8")).hexdigest()[:16] for key in keys]


def _hex_id(source: str, data: bytes) -> str:
    # one sha1 call over the \x1f-joined parts: the digest of updating part by part, in less time
    return f"{source}-{hashlib.sha1(data).hexdigest()[:16]}"
