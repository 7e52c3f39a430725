"""Dataset names and references: ``name``, ``name@latest``, ``name@N``, ``s3://BUCKET/PREFIX/name@N``.

Also the path rules every store applies to what it reads (a manifest may come from a teammate's
bucket): names match ``NAME_RE``, version folders ``VERSION_DIR_RE``. See docs/design.md.
"""

from __future__ import annotations

import os
import re

from cumed.errors import CumedError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
VERSION_DIR_RE = re.compile(r"^v([1-9][0-9]*)$")
TMP_PREFIX = ".tmp-"
# References under this prefix name model artifacts (``_models/quality@2``), kept in a store of their own.
MODELS_PREFIX = "_models/"
S3_RE = re.compile(r"^s3://([^/]+)/?(.*)$")
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def default_store() -> str:
    return os.environ.get("CUMED_STORE", "store")


def is_remote(root) -> bool:
    return isinstance(root, str) and root.startswith("s3://")



def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise CumedError(
            f"bad dataset name {name!r}: use lower-case letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit (e.g. cumed-pretrain)"
        )
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``name``, ``name@latest`` -> (name, None); ``name@3`` or ``name@v3`` -> (name, 3)."""
    if not isinstance(ref, str) or not ref:
        raise CumedError("empty dataset reference; use NAME, NAME@N or NAME@latest")
    name, _, version = ref.partition("@")
    validate_name(name)
    if not version or version == "latest":
        return name, None
    m = re.fullmatch(r"v?([1-9][0-9]*)", version)
    if not m:
        raise CumedError(f"bad version {version!r} in reference {ref!r}; use NAME@N (N >= 1) or NAME@latest")
    return name, int(m.group(1))



def split_remote_ref(ref: str) -> tuple[str | None, str]:
    """``s3://bucket/prefix/name@3`` -> (``s3://bucket/prefix``, ``name@3``); plain refs -> (None, ref)."""
    if is_remote(ref):
        root, _, tail = ref.rstrip("/").rpartition("/")
        if not root or root == "s3:/":
            raise CumedError(f"bad reference {ref!r}; use s3://BUCKET[/PREFIX]/NAME[@N]")
        return root, tail
    return None, ref


def validate_file_name(name: str) -> str:
    """A file of a file version (``model.bin``): one plain name, never a path."""
    if not isinstance(name, str) or not FILE_NAME_RE.match(name) or ".." in name:
        raise CumedError(f"bad file name {name!r} in a file version: use letters, digits, '.', '_' or '-', no folders")
    return name
