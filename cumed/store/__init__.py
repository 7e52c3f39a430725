"""The versioned dataset store: ``Store(root)`` for a local folder or ``s3://BUCKET/PREFIX``.

    from cumed.store import Store
    dv = Store("store").get("cumed-pretrain@latest")

Imports only pyarrow and the standard library (boto3/s3fs load when an s3:// store is opened);
never datatrove or torch. Contract: docs/design.md.
"""

from __future__ import annotations

import os

from cumed.store.base import Store
from cumed.store.local import CRASH_POINTS, LocalStore
from cumed.store.refs import NAME_RE, VERSION_DIR_RE, default_store, parse_ref, split_remote_ref, validate_name
from cumed.store.s3 import RemoteStore
from cumed.store.version import DatasetVersion, VerifyResult


def open_store(root: str | os.PathLike | None = None, create: bool = True) -> Store:
    """The store at ``root``: local for paths and file:// URLs, remote for s3:// URLs."""
    return Store(root, create=create)


def open_ref(ref: str, store: str | os.PathLike | None = None) -> tuple[Store, str]:
    """The store a reference lives in, and the reference within it.

    A full ``s3://BUCKET/PREFIX/NAME@N`` names its own store, so a trainer can paste the address
    a teammate sent without also passing ``--store``; a plain ``NAME@N`` is looked up in ``store``.
    """
    root, ref = split_remote_ref(ref)
    return Store(root or store, create=False), ref


__all__ = ["CRASH_POINTS", "DatasetVersion", "LocalStore", "NAME_RE", "RemoteStore", "Store", "VERSION_DIR_RE",
           "VerifyResult", "default_store", "open_ref", "open_store", "parse_ref", "split_remote_ref", "validate_name"]
