"""The versioned Parquet dataset store on local disk (contract: docs/design.md).

Layout of one version, immutable once published::

    <store>/<name>/v<N>/manifest.json
    <store>/<name>/v<N>/data/part-00000.parquet      kept rows
    <store>/<name>/v<N>/removed/part-00000.parquet   removed rows, each with removed_by + reason
    <store>/<name>/v<N>/README.md                     dataset card

Publishing is atomic: files go to ``<store>/<name>/.tmp-<uuid>/`` (beside the target, so the
final ``rename`` stays on one filesystem), are fsynced, and the directory is renamed to
``v<N>`` while holding ``<store>/<name>/.lock``. The version number is claimed under that lock,
so concurrent publishers get distinct versions; a crash leaves only a ``.tmp-*`` directory,
which readers never list and ``gc`` removes. Content identical to the latest version returns
that version.

The store imports only pyarrow and the standard library so that training machines can read
it without datatrove or torch.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from cumed.atomic import fsync_dir, write_json, write_text
from cumed.errors import CumedError
from cumed.hashing import sha256_file
from cumed.process import pid_alive
from cumed.schemas import check_file_kind, check_kind, schema_for
from cumed.store.base import Store
from cumed.store.parts import _as_batches, _PartWriter
from cumed.store.manifest import check_manifest, new_manifest
from cumed.store.refs import MODELS_PREFIX, NAME_RE, TMP_PREFIX, VERSION_DIR_RE, default_store, validate_file_name, validate_name
from cumed.store.version import DatasetVersion, VerifyResult, default_card

# Fault-injection points for the crash tests: CUMED_STORE_CRASH_AT=<point> SIGKILLs the process.
CRASH_POINTS = ("data_written", "removed_written", "locked", "manifest_written", "before_rename", "renamed")


# A publisher on another host cannot be asked whether it lives: it touches its ``.owner`` marker
# this often, and gc presumes it dead only after STALE_S seconds without a touch (the S3 store's
# heartbeat rule, for a shared file system).
HEARTBEAT_S = 20.0
STALE_S = 120.0


def _crash_point(point: str) -> None:
    if os.environ.get("CUMED_STORE_CRASH_AT") == point:
        os.kill(os.getpid(), 9)
    pause = os.environ.get("CUMED_STORE_PAUSE_AT", "")  # "<point>:<seconds>": widen a window for a test
    if pause.partition(":")[0] == point:
        time.sleep(float(pause.partition(":")[2] or 1))




class LocalStore(Store, scheme="file"):
    """A store root on local disk. See the module docstring for the layout and guarantees."""

    def __init__(self, root: str | os.PathLike | None = None, create: bool = True):
        root = str(root if root is not None else default_store())
        if "://" in root and not root.startswith("file://"):
            raise CumedError(
                f"store {root!r}: only local paths, file:// and s3:// stores are supported; use one of those"
            )
        self.root = Path(root.removeprefix("file://"))
        if not self.root.exists():
            if not create:
                raise CumedError(
                    f"store {str(self.root)!r} does not exist; build a dataset first (cumed build / cumed demo) "
                    f"or point --store / CUMED_STORE at an existing store"
                )
            self.root.mkdir(parents=True, exist_ok=True)
        elif not self.root.is_dir():
            raise CumedError(f"store {str(self.root)!r} is not a directory; point --store at a folder")

    # ---- listing

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and NAME_RE.match(p.name) and self.versions(p.name))

    def versions(self, name: str) -> list[int]:
        """Complete versions only: a ``v<N>`` directory with a manifest (renamed in one step)."""
        folder = self.root / validate_name(name)
        if not folder.is_dir():
            return []
        out = []
        for p in folder.iterdir():
            m = VERSION_DIR_RE.match(p.name)
            if m and (p / "manifest.json").is_file():
                out.append(int(m.group(1)))
        return sorted(out)

    def _subroot(self, folder: str) -> str:
        return str(self.root / folder)

    def _open(self, name: str, version: int) -> DatasetVersion:
        path = self.root / name / f"v{version}"
        return DatasetVersion(path, self._read_manifest(path, name, version))

    @staticmethod
    def _read_manifest(path: Path, name: str, version: int) -> dict:
        mpath = path / "manifest.json"
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CumedError(
                f"unreadable manifest {mpath}: {e}; the version is damaged: restore it from a copy or delete the version folder"
            ) from e
        return check_manifest(manifest, str(mpath), name, version)

    # ---- publishing

    @contextlib.contextmanager
    def _lock(self, name: str):
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def publish(
        self,
        name: str,
        data,
        *,
        kind: str = "documents",
        removed=None,
        stats: dict | Callable[[], dict] | None = None,
        lineage: dict | None = None,
        card: str | Callable[[], str] | None = None,
        extra: dict | None = None,
    ) -> DatasetVersion:
        """Publish rows as the next version of ``name`` and return it.

        ``data`` / ``removed``: a pyarrow Table, RecordBatches, an iterable of either, or a Parquet
        file/folder. Rows are written in the order given (callers sort for determinism) into
        fixed-size row groups, so identical rows give identical bytes and hashes.

        ``stats`` / ``card`` may be callables, asked for once the rows are written and before
        the commit: figures gathered from the rows as they pass (``curation.build.stats.BuildStats``),
        so the rows are read once. One that raises publishes nothing.
        """
        validate_name(name)
        check_kind(kind)
        with self._staging(name) as tmp:
            kept = _PartWriter(tmp, "data", kind, False, f"{name} data")
            for batch in _as_batches(data):
                kept.add(batch)
            kept_parts = kept.finish()
            _crash_point("data_written")
            gone = _PartWriter(tmp, "removed", kind, True, f"{name} removed rows")
            for batch in _as_batches(removed):
                gone.add(batch)
            removed_parts = gone.finish()
            _crash_point("removed_written")
            schema = (kept.schema or schema_for(kind)).to_string()
            manifest = new_manifest(name, kind, schema, [p.__dict__ for p in kept_parts + removed_parts],
                                    kept.rows, gone.rows, stats() if callable(stats) else stats, lineage, extra)
            return self._commit(name, tmp, manifest, card() if callable(card) else card)

    def publish_files(self, name: str, files: dict, *, kind: str = "model", lineage: dict | None = None,
                      card: str | None = None) -> DatasetVersion:
        """Publish files that are not rows (a model artifact) by the same protocol as a dataset:
        staged, hashed, committed under the lock, deduplicated by content hash.

        ``files``: ``{relative name: source path or bytes}``; they land under ``data/``.
        """
        validate_name(name)
        check_file_kind(kind)
        with self._staging(name) as tmp:
            entries = []
            for rel, src in sorted(files.items()):
                target = tmp / "data" / validate_file_name(rel)
                if isinstance(src, (bytes, bytearray)):
                    target.write_bytes(src)
                else:
                    shutil.copyfile(src, target)
                with open(target, "rb+") as f:
                    os.fsync(f.fileno())
                entries.append({"path": f"data/{rel}", "rows": None, "bytes": target.stat().st_size,
                                "sha256": sha256_file(target)})
            manifest = new_manifest(name, kind, "", entries, 0, 0, None, lineage, None)
            return self._commit(name, tmp, manifest, card)

    @contextlib.contextmanager
    def _staging(self, name: str):
        """A temp folder beside the target (one filesystem, so the commit is a rename), owned by
        this process until committed; removed on any failure."""
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        (tmp / "data").mkdir(parents=True)
        (tmp / "removed").mkdir()
        (tmp / ".owner").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "t": time.time()}))
        beat = _Heartbeat(tmp / ".owner")
        try:
            yield tmp
        except BaseException:
            beat.stop()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        beat.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # a no-op after a commit renamed it

    def _commit(self, name: str, tmp: Path, manifest: dict, card: str | None) -> DatasetVersion:
        """Number, describe and rename a staged version under the lock; identical content to the
        latest version returns that version instead."""
        folder = self.root / name
        with self._lock(name):
            _crash_point("locked")
            latest = self.versions(name)
            if latest:
                prev = self.get(f"{name}@{latest[-1]}")
                if prev.manifest.get("content_hash") == manifest["content_hash"]:
                    return prev
            version = (latest[-1] if latest else 0) + 1
            manifest["version"] = version
            write_text(tmp / "README.md", card or default_card(manifest), durable=True)
            write_json(tmp / "manifest.json", manifest, indent=2)  # durable: fsynced with its folder
            _crash_point("manifest_written")
            for sub in ("data", "removed"):
                fsync_dir(tmp / sub)
            fsync_dir(tmp)
            _crash_point("before_rename")
            # The owner marker stays until the rename: until then the folder is a live publish
            # that gc must leave alone (gc also waits for this lock).
            os.rename(tmp, folder / f"v{version}")
            fsync_dir(folder)
            (folder / f"v{version}" / ".owner").unlink(missing_ok=True)
            _crash_point("renamed")
        return self.get(f"{name}@{version}")

    # ---- checking

    def verify(self, ref: str) -> VerifyResult:
        """Recompute every sha256 and row count; name the first file that differs."""
        st, ref = self.route(ref)
        if st is not self:
            return st.verify(ref)
        dv = self.get(ref)
        listed = {f["path"] for f in dv.manifest["files"]}
        for n, f in enumerate(dv.manifest["files"]):
            p = dv.path / f["path"]
            if not p.is_file():
                return VerifyResult(dv.ref, False, n, "file missing", f["path"])
            if p.stat().st_size != f["bytes"]:
                return VerifyResult(dv.ref, False, n, f"size {p.stat().st_size} != {f['bytes']} bytes", f["path"])
            if sha256_file(p) != f["sha256"]:
                return VerifyResult(dv.ref, False, n, "sha256 differs", f["path"])
            if f.get("rows") is None:  # a file version (a model): no rows to count
                continue
            try:
                rows = pq.ParquetFile(p).metadata.num_rows
            except Exception as e:  # noqa: BLE001 - any parse failure means the file is damaged
                return VerifyResult(dv.ref, False, n, f"unreadable Parquet: {e}", f["path"])
            if rows != f["rows"]:
                return VerifyResult(dv.ref, False, n, f"{rows} rows != {f['rows']}", f["path"])
        for part in ("data", "removed"):
            for p in sorted((dv.path / part).glob("*")):
                rel = f"{part}/{p.name}"
                if rel not in listed:
                    return VerifyResult(dv.ref, False, len(listed), "file not in manifest", rel)
        total = sum(f["rows"] or 0 for f in dv.manifest["files"] if f["path"].startswith("data/"))
        if total != dv.rows:
            return VerifyResult(dv.ref, False, len(listed), f"data rows {total} != manifest rows {dv.rows}", "manifest.json")
        return VerifyResult(dv.ref, True, len(listed))

    def gc(self, min_age_s: float = 0.0) -> list[str]:
        """Remove debris of crashed publishes: ``.tmp-*`` folders whose publisher is gone.

        A publisher is alive while its pid runs (same host) or while it touches its ``.owner``
        marker (any host, within ``STALE_S``). Each dataset's folder is cleaned under its publish
        lock, so gc never races a commit; ``min_age_s`` keeps younger debris too."""
        removed = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and NAME_RE.match(p.name)):
            if not any(folder.glob(f"{TMP_PREFIX}*")):
                continue
            with self._lock(folder.name):
                for tmp in sorted(folder.glob(f"{TMP_PREFIX}*")):
                    if _publisher_alive(tmp) or _age(tmp) < min_age_s:
                        continue
                    shutil.rmtree(tmp, ignore_errors=True)
                    removed.append(str(tmp.relative_to(self.root)))
        models = self.root / MODELS_PREFIX.rstrip("/")
        if models.is_dir() and self.root.name != models.name:  # the models store beside the datasets
            removed += [f"{models.name}/{r}" for r in self.models().gc(min_age_s)]
        return removed



class _Heartbeat:
    """Touches a staging folder's ``.owner`` marker until stopped (see ``HEARTBEAT_S``)."""

    def __init__(self, marker: Path):
        self.marker, self._stop = marker, threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):  # renamed into a version, or removed
                os.utime(self.marker)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _age(tmp: Path) -> float:
    """Seconds since the staging folder (or its owner marker) last changed."""
    stamps = [p.stat().st_mtime for p in (tmp, tmp / ".owner") if p.exists()]
    return time.time() - max(stamps, default=0.0)


def _publisher_alive(tmp: Path) -> bool:
    marker = tmp / ".owner"
    try:
        owner = json.loads(marker.read_text())
        touched = marker.stat().st_mtime
    except (OSError, ValueError):
        owner = None
    if not isinstance(owner, dict):
        # no readable marker yet: a publisher between creating its folder and writing the marker,
        # or debris of an old crash; only age tells them apart
        return _age(tmp) < STALE_S
    if owner.get("host") == socket.gethostname():
        return pid_alive(owner.get("pid"))
    return time.time() - touched < STALE_S  # another host: its heartbeat says
