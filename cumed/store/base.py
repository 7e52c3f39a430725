"""``Store``: the one interface to a versioned dataset store, local or on S3.

``Store(root)`` returns the backend for the root's scheme (``LocalStore`` for paths and
``file://``, ``RemoteStore`` for ``s3://``); every backend offers names/versions/get/publish/
verify/gc, and the listing and diff below are written once against that interface.
Layout, manifest keys and guarantees: docs/design.md.
"""

from __future__ import annotations

import os

from cumed.errors import CumedError
from cumed.schemas import KEY_COLUMN
from cumed.store.refs import MODELS_PREFIX, default_store, parse_ref


class Store:
    """A store root. Subclasses register a URL scheme (``class S3(Store, scheme="s3")``)."""

    _backends: dict[str, type["Store"]] = {}

    def __init_subclass__(cls, scheme: str | None = None, **kw):
        super().__init_subclass__(**kw)
        if scheme:
            Store._backends[scheme] = cls

    def __new__(cls, root: str | os.PathLike | None = None, create: bool = True):
        if cls is Store:
            text = str(root if root is not None else default_store())
            scheme = text.split("://", 1)[0] if "://" in text else "file"
            cls = Store._backends.get(scheme) or Store._backends["file"]  # the local store names a bad scheme
        return super().__new__(cls)

    # ---- the backend's part
    root: object

    def names(self) -> list[str]:
        raise NotImplementedError

    def versions(self, name: str) -> list[int]:
        raise NotImplementedError

    def _open(self, name: str, version: int):
        """The committed version ``name@version`` (its manifest checked by ``check_manifest``)."""
        raise NotImplementedError

    @property
    def location(self) -> str:
        """The root as users wrote it, for messages."""
        return str(self.root)

    def publish(self, name: str, data, **kw):
        raise NotImplementedError

    def verify(self, ref: str):
        raise NotImplementedError

    def gc(self, min_age_s: float | None = None) -> list[str]:
        raise NotImplementedError

    def _subroot(self, folder: str) -> str:
        """The root of a store nested in this one (the models store)."""
        raise NotImplementedError

    # ---- written once for every backend

    def models(self) -> "Store":
        """Model artifacts live in a store of their own beside the datasets (``<root>/_models``):
        same publish protocol, push, pull and verify; dataset listings never show them."""
        return Store(self._subroot(MODELS_PREFIX.rstrip("/")))

    def get(self, ref: str):
        """``name``, ``name@latest``, ``name@N`` or ``_models/name@N`` -> the version."""
        st, ref = self.route(ref)
        if st is not self:
            return st.get(ref)
        name, version = parse_ref(ref)
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise CumedError(f"no dataset named {name!r} in store {self.location!r} (datasets: {known})")
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise CumedError(f"{name}@{version} does not exist in store {self.location!r}; versions: "
                             + ", ".join(f"{name}@{v}" for v in versions))
        return self._open(name, version)

    def route(self, ref: str) -> tuple["Store", str]:
        """``_models/NAME@N`` names a model artifact: (models store, ``NAME@N``); else (self, ref)."""
        if isinstance(ref, str) and ref.startswith(MODELS_PREFIX):
            return self.models(), ref[len(MODELS_PREFIX):]
        return self, ref

    def list(self) -> list[dict]:
        rows = []
        for name in self.names():
            for v in self.versions(name):
                try:
                    dv = self.get(f"{name}@{v}")
                    rows.append(
                        {"ref": dv.ref, "kind": dv.kind, "rows": dv.rows, "removed_rows": dv.removed_rows,
                         "created_at": dv.manifest.get("created_at", "")}
                    )
                except CumedError as e:
                    rows.append({"ref": f"{name}@{v}", "kind": "?", "rows": None, "removed_rows": None, "error": str(e)})
        return rows

    def diff(self, a: str, b: str) -> dict:
        """What changed between two versions: counts, schema, and row keys added/removed."""
        va, vb = self.get(a), self.get(b)
        out = {
            "a": va.ref, "b": vb.ref, "kind": [va.kind, vb.kind],
            "rows": [va.rows, vb.rows], "removed_rows": [va.removed_rows, vb.removed_rows],
            "schema_changed": va.manifest.get("schema") != vb.manifest.get("schema"),
            "same_content": va.content_hash == vb.content_hash,
        }
        key = KEY_COLUMN.get(va.kind)
        if key and va.kind == vb.kind:
            ka = set(va.to_arrow(columns=[key]).column(key).to_pylist())
            kb = set(vb.to_arrow(columns=[key]).column(key).to_pylist())
            out["added"] = len(kb - ka)
            out["dropped"] = len(ka - kb)
            out["added_examples"] = sorted(kb - ka)[:10]
            out["dropped_examples"] = sorted(ka - kb)[:10]
        sa = (va.manifest.get("stats") or {}).get("removed_by_reason", {})
        sb = (vb.manifest.get("stats") or {}).get("removed_by_reason", {})
        if sa or sb:
            out["removed_by_reason"] = {k: [sa.get(k, 0), sb.get(k, 0)] for k in sorted(set(sa) | set(sb))}
        return out

