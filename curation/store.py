"""The versioned Parquet dataset store (design.md contract).

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

This module imports only pyarrow and the standard library so that training machines can read
the store without datatrove. It handles local roots; ``s3://`` roots are served by ``curation.remote_store`` (boto3/s3fs,
imported only when used).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .errors import CumedError
from .process import pid_alive
from .schemas import KEY_COLUMN, check_kind, conform

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
VERSION_DIR_RE = re.compile(r"^v([1-9][0-9]*)$")
TMP_PREFIX = ".tmp-"

# Fixed sizes make the bytes (and so the sha256) of a version depend only on its rows.
ROW_GROUP_ROWS = 8192
FILE_ROWS = 262_144
COMPRESSION = "zstd"

# Fault-injection points for the crash tests: CUMED_STORE_CRASH_AT=<point> SIGKILLs the process.
CRASH_POINTS = ("data_written", "removed_written", "manifest_written", "locked", "renamed")


def _crash_point(point: str) -> None:
    if os.environ.get("CUMED_STORE_CRASH_AT") == point:
        os.kill(os.getpid(), 9)


def default_store() -> str:
    return os.environ.get("CUMED_STORE", "store")


def open_store(root: str | os.PathLike | None = None, create: bool = True) -> "Store":
    """The store at ``root``: local for paths and file:// URLs, remote for s3:// URLs."""
    return Store(root, create=create)


def open_ref(ref: str, store: str | os.PathLike | None = None) -> tuple[Store, str]:
    """The store a reference lives in, and the reference within it.

    A full ``s3://BUCKET/PREFIX/NAME@N`` names its own store, so a trainer can paste the address
    a teammate sent without also passing ``--store``; a plain ``NAME@N`` is looked up in ``store``.
    """
    # a local import (remote_store imports this module); it loads boto3 only for a remote store
    from .remote_store import split_remote_ref

    root, ref = split_remote_ref(ref)
    return Store(root or store, create=False), ref


# --------------------------------------------------------------------------- references


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


# --------------------------------------------------------------------------- hashing I/O


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- writing parts


def _as_batches(rows) -> Iterator[pa.RecordBatch]:
    if rows is None:
        return
    if isinstance(rows, pa.Table):
        yield from rows.to_batches()
    elif isinstance(rows, pa.RecordBatch):
        yield rows
    elif isinstance(rows, (str, Path)):
        yield from pq.ParquetFile(rows).iter_batches() if Path(rows).is_file() else _dir_batches(Path(rows))
    else:
        for item in rows:
            yield from _as_batches(item)


def _dir_batches(folder: Path) -> Iterator[pa.RecordBatch]:
    for f in sorted(folder.rglob("*.parquet")):
        yield from pq.ParquetFile(f).iter_batches()


@dataclass
class _Part:
    path: str
    rows: int
    bytes: int
    sha256: str


def _seal(folder: Path, name: str, rows: int) -> _Part:
    path = folder / name
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    return _Part(name, rows, path.stat().st_size, sha256_file(path))


class _PartWriter:
    """Writes conformed batches into fixed-size row groups and files, hashing as it goes."""

    def __init__(self, folder: Path, prefix: str, kind: str, removed: bool, where: str):
        self.folder, self.prefix = folder, prefix
        self.kind, self.removed, self.where = kind, removed, where
        self.parts: list[_Part] = []
        self.schema: pa.Schema | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._file_rows = 0
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._done: list = []

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if table.num_rows == 0 and self.schema is not None:
            return
        table = conform(table, self.kind, self.removed, self.where)
        if self.schema is None:
            self.schema = table.schema
        elif not table.schema.equals(self.schema):
            try:
                table = table.select(self.schema.names).cast(self.schema)
            except (KeyError, pa.ArrowInvalid, ValueError) as e:
                raise CumedError(
                    f"rows{f' in {self.where}' if self.where else ''} change schema mid-stream "
                    f"({table.schema} vs {self.schema}); publish one schema per version"
                ) from e
        self._pending.append(table)
        self._pending_rows += table.num_rows
        while self._pending_rows >= ROW_GROUP_ROWS:
            self._flush_group(ROW_GROUP_ROWS)

    def _flush_group(self, n: int) -> None:
        table = pa.concat_tables(self._pending)
        group, rest = table.slice(0, n), table.slice(n)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows
        if self._writer is None:
            name = f"{self.prefix}/part-{len(self._done):05d}.parquet"
            # A native file keeps the GIL free for compression; the sha256 is computed from the
            # page cache right after the file is closed (faster than hashing through Python writes).
            self._writer = pq.ParquetWriter(
                str(self.folder / name), self.schema, compression=COMPRESSION, write_statistics=True, store_schema=True
            )
            self._name = name
        self._writer.write_table(group, row_group_size=n)
        self._file_rows += group.num_rows
        if self._file_rows >= FILE_ROWS:
            self._close_file()

    def _close_file(self) -> None:
        self._writer.close()
        # fsync + sha256 release the GIL: overlap them with writing the next file.
        self._done.append(self._pool.submit(_seal, self.folder, self._name, self._file_rows))
        self._writer, self._file_rows = None, 0

    def finish(self) -> list[_Part]:
        if self._pending_rows:
            self._flush_group(self._pending_rows)
        if self._writer is not None:
            self._close_file()
        self.parts = [f.result() for f in self._done]
        self._pool.shutdown()
        return self.parts

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)


# --------------------------------------------------------------------------- reading


@dataclass
class VerifyResult:
    ref: str
    ok: bool
    checked: int
    problem: str = ""
    file: str = ""

    def to_dict(self) -> dict:
        return {"ref": self.ref, "ok": self.ok, "files_checked": self.checked, "problem": self.problem, "file": self.file}


class DatasetVersion:
    """One published version: its manifest, files, and readers for every consumer."""

    def __init__(self, path: Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest

    name = property(lambda self: self.manifest["name"])
    version = property(lambda self: int(self.manifest["version"]))
    kind = property(lambda self: self.manifest["kind"])
    ref = property(lambda self: f"{self.name}@{self.version}")
    rows = property(lambda self: int(self.manifest["rows"]))
    removed_rows = property(lambda self: int(self.manifest["removed_rows"]))
    content_hash = property(lambda self: self.manifest["content_hash"])

    def __repr__(self) -> str:
        return f"DatasetVersion({self.ref}, kind={self.kind}, rows={self.rows}, removed={self.removed_rows})"

    def files(self, part: str = "data") -> list[Path]:
        return [self.path / f["path"] for f in self.manifest["files"] if f["path"].startswith(part + "/")]

    @property
    def data_dir(self) -> Path:
        return self.path / "data"

    def _schema(self, part: str) -> pa.Schema | None:
        files = self.files(part)
        return pq.read_schema(files[0]) if files else None

    def to_arrow(self, part: str = "data", columns: list[str] | None = None) -> pa.Table:
        files = self.files(part)
        if not files:
            from .schemas import schema_for

            schema = schema_for(self.kind, removed=(part == "removed"))
            return schema.empty_table() if columns is None else schema.empty_table().select(columns)
        return pa.concat_tables(pq.read_table(f, columns=columns) for f in files)

    def to_pandas(self, part: str = "data", columns: list[str] | None = None):
        return self.to_arrow(part, columns).to_pandas()

    def to_hf(self, part: str = "data"):
        """A Hugging Face ``datasets.Dataset`` over the version's Parquet files (memory-mapped cache)."""
        try:
            import datasets
        except ImportError as e:  # pragma: no cover - depends on the install
            raise CumedError("to_hf() needs Hugging Face datasets: pip install 'cumed[hf]'") from e
        files = [str(f) for f in self.files(part)]
        if not files:
            return datasets.Dataset.from_dict({n: [] for n in self.to_arrow(part).column_names})
        return datasets.load_dataset("parquet", data_files=files, split="train")

    def iter_batches(self, part: str = "data", batch_size: int = 8192, columns: list[str] | None = None):
        """Stream record batches: memory stays bounded by one row group, whatever the size."""
        for f in self.files(part):
            yield from pq.ParquetFile(f).iter_batches(batch_size=batch_size, columns=columns)

    def card(self) -> str:
        p = self.path / "README.md"
        return p.read_text(encoding="utf-8") if p.exists() else ""


# --------------------------------------------------------------------------- the store


class Store:
    """A store root on local disk. See the module docstring for the layout and guarantees.

    ``Store("s3://bucket/prefix")`` returns a :class:`curation.remote_store.RemoteStore` (same API).
    """

    def __new__(cls, root: str | os.PathLike | None = None, create: bool = True):
        if cls is Store and str(root if root is not None else default_store()).startswith("s3://"):
            from .remote_store import RemoteStore  # imported lazily: boto3/s3fs are the optional [s3] extra

            return super().__new__(RemoteStore)  # a Store subclass: Python then runs RemoteStore.__init__
        return super().__new__(cls)

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

    def get(self, ref: str) -> DatasetVersion:
        name, version = parse_ref(ref)
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise CumedError(f"no dataset named {name!r} in store {str(self.root)!r} (datasets: {known})")
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise CumedError(
                f"{name}@{version} does not exist in store {str(self.root)!r}; versions: "
                + ", ".join(f"{name}@{v}" for v in versions)
            )
        path = self.root / name / f"v{version}"
        return DatasetVersion(path, self._read_manifest(path))

    @staticmethod
    def _read_manifest(path: Path) -> dict:
        mpath = path / "manifest.json"
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CumedError(
                f"unreadable manifest {mpath}: {e}; the version is damaged: restore it from a copy or delete the version folder"
            ) from e
        missing = [k for k in ("name", "version", "kind", "files", "rows", "removed_rows") if k not in manifest]
        if missing:
            raise CumedError(f"manifest {mpath} lacks {', '.join(missing)}; the version is damaged: restore or delete it")
        return manifest

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
        stats: dict | None = None,
        lineage: dict | None = None,
        card: str | None = None,
        extra: dict | None = None,
    ) -> DatasetVersion:
        """Publish rows as the next version of ``name`` and return it.

        ``data`` / ``removed``: a pyarrow Table, RecordBatches, an iterable of either, or a Parquet
        file/folder. Rows are written in the order given (callers sort for determinism) into
        fixed-size row groups, so identical rows give identical bytes and hashes.
        """
        validate_name(name)
        check_kind(kind)
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        (tmp / "data").mkdir(parents=True)
        (tmp / "removed").mkdir()
        (tmp / ".owner").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "t": time.time()}))
        try:
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
            from .schemas import schema_for

            schema = kept.schema or schema_for(kind)
            files = [p.__dict__ for p in kept_parts + removed_parts]
            content_hash = hashlib.sha256(
                json.dumps({"kind": kind, "schema": schema.to_string(), "files": [(f["path"], f["sha256"]) for f in files]}).encode()
            ).hexdigest()
            manifest = {
                "name": name,
                "version": None,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "kind": kind,
                "schema": schema.to_string(),
                "files": files,
                "rows": kept.rows,
                "removed_rows": gone.rows,
                "content_hash": content_hash,
                "stats": stats or {},
                "lineage": {"parents": [], "recipe": None, "config_hash": None, "code_version": __version__,
                            "inputs": [], "annotations": [], **(lineage or {})},
                **(extra or {}),
            }
            with self._lock(name):
                _crash_point("locked")
                latest = self.versions(name)
                if latest:
                    prev = self.get(f"{name}@{latest[-1]}")
                    if prev.manifest.get("content_hash") == content_hash:
                        shutil.rmtree(tmp, ignore_errors=True)
                        return prev
                version = (latest[-1] if latest else 0) + 1
                manifest["version"] = version
                (tmp / "README.md").write_text(card or default_card(manifest), encoding="utf-8")
                _write_json_durable(tmp / "manifest.json", manifest)
                _crash_point("manifest_written")
                (tmp / ".owner").unlink()
                for sub in ("data", "removed"):
                    _fsync_dir(tmp / sub)
                _fsync_dir(tmp)
                os.rename(tmp, folder / f"v{version}")
                _fsync_dir(folder)
                _crash_point("renamed")
            return self.get(f"{name}@{version}")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    # ---- checking

    def verify(self, ref: str) -> VerifyResult:
        """Recompute every sha256 and row count; name the first file that differs."""
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
        total = sum(f["rows"] for f in dv.manifest["files"] if f["path"].startswith("data/"))
        if total != dv.rows:
            return VerifyResult(dv.ref, False, len(listed), f"data rows {total} != manifest rows {dv.rows}", "manifest.json")
        return VerifyResult(dv.ref, True, len(listed))

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

    def gc(self, min_age_s: float = 0.0) -> list[str]:
        """Remove debris of crashed publishes: ``.tmp-*`` dirs whose publisher is gone."""
        removed = []
        host = socket.gethostname()
        for folder in (p for p in self.root.iterdir() if p.is_dir()):
            for tmp in folder.glob(f"{TMP_PREFIX}*"):
                try:
                    owner = json.loads((tmp / ".owner").read_text())
                except (OSError, json.JSONDecodeError):
                    owner = {}
                if owner.get("host") == host and pid_alive(owner.get("pid")):
                    continue
                if time.time() - tmp.stat().st_mtime < min_age_s:
                    continue
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(str(tmp.relative_to(self.root)))
        return removed


def _write_json_durable(path: Path, obj: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2, sort_keys=False)
        f.flush()
        os.fsync(f.fileno())


def default_card(manifest: dict) -> str:
    """A minimal dataset card; recipes replace it with a full one."""
    lines = [
        f"# {manifest['name']} v{manifest['version']}",
        "",
        f"- kind: {manifest['kind']}",
        f"- rows: {manifest['rows']:,} kept, {manifest['removed_rows']:,} removed",
        f"- created: {manifest['created_at']}",
        f"- content hash: `{manifest['content_hash']}`",
    ]
    parents = manifest["lineage"].get("parents") or []
    if parents:
        lines.append(f"- parents: {', '.join(parents)}")
    return "\n".join(lines) + "\n"


def iter_table_batches(rows: Iterable) -> Iterator[pa.RecordBatch]:
    """Public helper: normalise tables/batches/iterables into record batches."""
    return _as_batches(rows)
