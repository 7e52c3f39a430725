"""From a checkpoint (or a dataset version) back to the raw files: the chain ``cumed lineage`` prints.

Checkpoint folders carry ``lineage.json`` (docs/design.md, "Checkpoint lineage"), read here as
plain JSON so the foundation needs no training stack; versions carry their manifest's lineage.
``trace`` follows both into one tree of nodes::

    {"kind": "checkpoint" | "dataset" | "model" | "tokenizer" | "annotation" | "raw",
     "id": ..., "status": "ok" | "changed" | "missing" | "seen" | ..., "note": ..., <hashes>,
     "role": how the node's parent used it, "children": [...]}

Every check is made now: a checkpoint's sha256 against the one its child recorded, a version's
content hash against the one a checkpoint recorded. A node reached twice is expanded once (the
tokenizer and the pretrain checkpoint sit under several branches); the later ones say ``seen``.
Missing folders, versions or stores become nodes that say so: a lineage is read to find out what
is gone, so it never stops there.
"""

from __future__ import annotations

import json
from pathlib import Path

from cumed.errors import CumedError
from cumed.hashing import CHECKPOINT_LINEAGE, checkpoint_sha256
from cumed.store import Store, open_ref

# What a checkpoint node shows of its lineage.json besides its children.
CHECKPOINT_FIELDS = ("stage", "engine", "created", "code_version", "code_sha256")


def is_checkpoint(target: str | Path) -> bool:
    p = Path(target)
    return p.is_dir() and ((p / CHECKPOINT_LINEAGE).is_file() or (p / "config.json").is_file())


def trace(target: str | Path, store: Store | str | None = None) -> dict:
    """The lineage tree of a checkpoint folder or a dataset reference (``name@N``, ``s3://.../name@N``)."""
    t, text = _Tracer(store), str(target)
    if is_checkpoint(target):
        return t.checkpoint(text, None)
    if "@" not in text and Path(target).exists():
        raise CumedError(f"{target} is neither a checkpoint folder (no lineage.json or config.json) nor a dataset "
                         f"reference; give runs/<stage>-*/final or NAME@N")
    if "/" in text and "://" not in text and not text.startswith("_models/"):  # a path: a checkpoint now gone
        return t.checkpoint(text, None)
    return t.dataset(text, None, None)


class _Tracer:
    def __init__(self, store):
        self.store_arg = store
        self.seen: set[tuple[str, str]] = set()
        self.sha_now: dict[str, str | None] = {}  # checkpoint path -> sha256 computed this run
        self.stores: dict[str, Store | None] = {}

    # ---- stores

    def _store(self, root) -> Store | None:
        if isinstance(root, Store):
            return root
        key = str(root) if root is not None else ""
        if key not in self.stores:
            try:
                self.stores[key] = Store(root, create=False)
            except (CumedError, OSError):
                self.stores[key] = None
        return self.stores[key]

    def _seen(self, kind: str, key: str) -> bool:
        if (kind, key) in self.seen:
            return True
        self.seen.add((kind, key))
        return False

    # ---- checkpoints

    def checkpoint(self, path: str, recorded: str | None, role: str | None = None) -> dict:
        p = Path(path)
        key = str(p.resolve()) if p.exists() else str(path)
        node = {"kind": "checkpoint", "id": key, "role": role, "sha256": None, "recorded_sha256": recorded,
                "status": "ok", "children": []}
        if not p.is_dir():
            return {**node, "sha256": recorded, "status": "missing", "note": "checkpoint folder not found"}
        if key not in self.sha_now:
            try:
                self.sha_now[key] = checkpoint_sha256(p)
            except (CumedError, OSError):
                self.sha_now[key] = None
        node["sha256"] = now = self.sha_now[key]
        if now is None:
            node.update(status="no weights", note="no *.safetensors / *.bin in the folder")
        elif recorded and recorded != now:
            node.update(status="changed", note=f"changed since it was recorded (sha256 then {recorded[:12]}, now {now[:12]})")
        if self._seen("checkpoint", key):
            return {**node, "status": node["status"] if node["status"] != "ok" else "seen", "see_above": True}
        try:
            lin = json.loads((p / CHECKPOINT_LINEAGE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {**node, "status": node["status"] if node["status"] != "ok" else "no lineage",
                    "note": node.get("note") or f"no {CHECKPOINT_LINEAGE}: trained before lineage was recorded, or elsewhere"}
        except (OSError, json.JSONDecodeError) as e:
            return {**node, "status": "unreadable", "note": f"{CHECKPOINT_LINEAGE}: {e}"}
        node.update({k: lin.get(k) for k in CHECKPOINT_FIELDS})
        node["hardware"] = lin.get("hardware")
        # the parent checkpoint first: the chain then reads down, stage by stage, to the first one
        kids = node["children"]
        parent = lin.get("parent")
        if isinstance(parent, dict) and parent.get("path"):
            kids.append(self.checkpoint(parent["path"], parent.get("sha256"), role="parent"))
        kids += self._checkpoints(lin.get("checkpoints"))
        for r, d in (lin.get("datasets") or {}).items():
            if isinstance(d, dict) and d.get("ref"):
                kids.append(self.dataset(d["ref"], d.get("content_hash"), d.get("store"), role=r))
        tok = lin.get("tokenizer")
        if isinstance(tok, dict) and (tok.get("path") or tok.get("sha256")):
            kids.append(self.tokenizer(tok))
        return node

    def _checkpoints(self, named) -> list[dict]:
        """``{"policy": {"path", "sha256"}, "reward": {...}}`` (RS versions and checkpoints)."""
        return [self.checkpoint(c["path"], c.get("sha256"), role=r) for r, c in (named or {}).items()
                if isinstance(c, dict) and c.get("path")]

    def tokenizer(self, tok: dict) -> dict:
        path = tok.get("path")
        node = {"kind": "tokenizer", "id": tok.get("sha256") or path, "path": path, "sha256": tok.get("sha256"),
                "role": None, "status": "ok", "children": []}
        if self._seen("tokenizer", node["id"]):
            return {**node, "status": "seen", "see_above": True}
        # a tokenizer cumed trained names the version it was trained on (training.tokenizer)
        meta = Path(path) / "cumed_tokenizer.json" if path else None
        if meta is not None and meta.is_file():
            try:
                info = json.loads(meta.read_text(encoding="utf-8"))  # no store recorded: looked up in --store
                node["children"].append(self.dataset(info["dataset"], info.get("content_hash"), None, role="trained on"))
            except (OSError, json.JSONDecodeError, KeyError, TypeError):
                pass
        return node

    # ---- dataset versions

    def dataset(self, ref: str, recorded: str | None, store_root, role: str | None = None) -> dict:
        node = {"kind": "model" if ref.startswith("_models/") else "dataset", "id": ref, "role": role,
                "content_hash": None, "recorded_content_hash": recorded, "status": "ok", "children": []}
        try:
            if store_root is not None:
                st = self._store(store_root)
                if st is None:
                    raise CumedError(f"store {store_root} not found")
            elif "://" in ref:
                st, ref = open_ref(ref, None)
            else:
                st = self._store(self.store_arg)
                if st is None:
                    raise CumedError(f"store {self.store_arg} not found")
            dv = st.get(ref)
        except CumedError as e:
            return {**node, "content_hash": recorded, "status": "missing", "note": str(e)}
        node.update(id=dv.ref if node["kind"] == "dataset" else f"_models/{dv.ref}", store=st.location, kind_of=dv.kind,
                    content_hash=dv.content_hash, rows=dv.rows, created=dv.manifest.get("created_at"))
        if recorded and recorded != dv.content_hash:
            node.update(status="changed", note=f"content hash recorded {recorded[:12]}, now {dv.content_hash[:12]}")
        if self._seen("dataset", f"{st.location}|{node['id']}"):
            return {**node, "status": node["status"] if node["status"] != "ok" else "seen", "see_above": True}
        lin = dv.manifest.get("lineage") or {}
        if lin.get("recipe"):
            node["recipe"] = lin["recipe"]
        node["code_sha256"] = lin.get("code_sha256")
        kids = node["children"]
        for parent in lin.get("parents") or []:
            kids.append(self.dataset(parent, None, st, role="parent"))
        for m in lin.get("models") or []:
            kids.append(self._model(m, st))
        kids += self._checkpoints(lin.get("checkpoints"))
        for a in lin.get("annotations") or []:
            kids.append({"kind": "annotation", "id": a if isinstance(a, str) else json.dumps(a, ensure_ascii=False),
                         "status": "ok", "children": []})
        for f in lin.get("inputs") or []:
            kids.append({"kind": "raw", "id": f.get("path"), "source": f.get("source"), "sha256": f.get("sha256"),
                         "bytes": f.get("bytes"), "status": "ok", "children": []})
        return node

    def _model(self, m: dict, st: Store) -> dict:
        """A model artifact a build applied (``{name, version, path, sha256}``): its own version."""
        if not isinstance(m, dict) or not m.get("name"):
            return {"kind": "model", "id": str(m), "status": "unreadable", "children": []}
        ref = f"_models/{m['name']}@{m['version']}" if m.get("version") else f"_models/{m['name']}"
        node = self.dataset(ref, None, st, role="model")
        return {**node, "sha256": m.get("sha256")}


def walk(node: dict):
    """Every node of a tree, depth first."""
    yield node
    for c in node.get("children") or []:
        yield from walk(c)


def summary(tree: dict) -> dict:
    """Counts by kind, and the nodes that changed or are gone: what a reader of the tree looks for first."""
    nodes = list(walk(tree))
    kinds: dict[str, int] = {}
    for n in nodes:
        if not n.get("see_above"):
            kinds[n["kind"]] = kinds.get(n["kind"], 0) + 1
    bad: dict[tuple, dict] = {}  # once each, however many branches reach it
    for n in nodes:
        if n["status"] not in ("ok", "seen"):
            bad.setdefault((n["kind"], n["id"], n["status"]),
                           {"kind": n["kind"], "id": n["id"], "status": n["status"], "note": n.get("note")})
    return {"counts": kinds, "problems": list(bad.values())}
