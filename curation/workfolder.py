"""A build's work folder on any fsspec URL, and a task's private scratch folder.

The stages of ``cumed build`` exchange data only through the work folder: a local folder, or
any URL datatrove's ``DataFolder`` takes (``s3://bucket/builds``). Where a task needs a local
file (signature files are memory-mapped; a rank's signature files grow as it reads), it works
in a private scratch folder (``task_scratch``): it downloads what it reads there, writes there,
uploads its outputs to the work folder, and the folder is deleted when the task ends, failed or
not. Nothing else is shared between tasks, so nodes that share only a bucket can run a build.

A local work folder is used in place, as before: nothing is copied, so the local build keeps its
speed, and its writes stay atomic (``cumed.atomic``). On object storage an object appears whole
or not at all: every file is written to scratch first and uploaded in one put.

Scratch folders live under ``$CUMED_SCRATCH_DIR`` (default: the system's temp folder). The
executors give every task one (``ScratchPerTask``), removed when the task ends; a task's steps
open theirs inside it (``task_scratch``), and datatrove's own temp files (the Ray executor's
task log) land there too.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from datatrove.io import DataFolder, get_datafolder

from cumed.atomic import replacing
from cumed.errors import CumedError
from cumed.process import pid_alive

SCRATCH_ENV = "CUMED_SCRATCH_DIR"
# URL schemes whose first path part is a bucket, which ``check_reachable`` asks for
BUCKET_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"}

_task_root: Path | None = None  # this task's scratch root, while a task runs (``scratch_for_task``)


def is_url(path) -> bool:
    """A URL other than ``file://``: read and written through fsspec, never as a local path."""
    s = str(path)
    return "://" in s and not s.startswith("file://")


def join(base, *parts: str) -> str:
    """``base/part/...`` for a local folder or a URL (``Path`` would turn ``s3://`` into ``s3:/``)."""
    return "/".join([str(base).rstrip("/"), *(str(p).strip("/") for p in parts if str(p).strip("/"))])


def folder(url) -> DataFolder:
    return url if isinstance(url, DataFolder) else get_datafolder(str(url))


def local_root(df: DataFolder) -> Path | None:
    """The folder's local path, or None on object storage."""
    return Path(df.path) if df.is_local() else None


# ------------------------------------------------------------------------- scratch
def scratch_dir() -> str | None:
    root = os.environ.get(SCRATCH_ENV)
    if root:
        Path(root).mkdir(parents=True, exist_ok=True)
    return root or None


@contextlib.contextmanager
def scratch_for_task(rank: int):
    """A task's private scratch root, deleted when the task ends; ``tempfile`` points into it
    meanwhile, so what datatrove keeps in temp files (the Ray executor's task log) goes too.
    A task killed outright (SIGKILL, OOM) cannot delete its own: the next task on the machine
    removes those whose process is gone."""
    global _task_root
    parent = scratch_dir()
    _sweep_dead(Path(parent or tempfile.gettempdir()))
    root = Path(tempfile.mkdtemp(prefix=f"cumed-task-{rank:05d}-{os.getpid()}-", dir=parent))
    before = _task_root, tempfile.tempdir
    _task_root, tempfile.tempdir = root, str(root)
    try:
        yield root
    finally:
        _task_root, tempfile.tempdir = before
        shutil.rmtree(root, ignore_errors=True)


def _sweep_dead(parent: Path) -> None:
    for d in parent.glob("cumed-task-*-*-*"):
        pid = d.name.split("-")[3]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


class ScratchPerTask:
    """Executor mixin: every task runs with its own scratch root (``scratch_for_task``)."""

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        # "is this task complete?" must ask the folder, not a listing this process cached earlier
        self.logging_dir.fs.invalidate_cache()
        with scratch_for_task(rank):
            return super()._run_for_rank(rank, local_rank, node_rank)


@contextlib.contextmanager
def task_scratch(label: str = "scratch"):
    """A private folder for one step of a task, deleted on exit (failed or not); inside the
    task's scratch root when an executor gave one, else under ``$CUMED_SCRATCH_DIR``. Logs what
    it held (the task log says where a task's local files were, and that they are gone)."""
    from loguru import logger

    root = str(_task_root) if _task_root is not None and _task_root.is_dir() else scratch_dir()
    path = Path(tempfile.mkdtemp(prefix=f"cumed-{label}-", dir=root))
    try:
        yield path
    finally:
        files = [f for f in path.rglob("*") if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        shutil.rmtree(path, ignore_errors=True)
        logger.debug(f"scratch {path}: held {len(files)} files, {size} bytes; deleted")


# ------------------------------------------------------------------------- reading
def names(df: DataFolder, pattern: str = "*", sub: str = "", recursive: bool = False) -> list[str]:
    """Paths (relative to ``df``) of the files under ``sub`` whose name matches ``pattern``, in
    ``Path`` order (that of ``sorted(folder.glob(...))``, which decides the row order downstream)."""
    root = local_root(df)
    if root is not None:
        base = root / sub
        found = base.rglob(pattern) if recursive else base.glob(pattern)
        rels = [p.relative_to(root).as_posix() for p in found if p.is_file()]
    else:
        df.fs.invalidate_cache()  # another process wrote there since this one last listed
        if sub and not df.isdir(sub):
            return []
        rels = [f for f in df.list_files(sub, recursive=recursive) if fnmatch.fnmatch(PurePosixPath(f).name, pattern)]
    return sorted(rels, key=lambda r: PurePosixPath(r).parts)


def exists(df: DataFolder, rel: str) -> bool:
    root = local_root(df)
    if root is not None:
        return (root / rel).exists()
    df.fs.invalidate_cache()
    return df.exists(rel)


def local_copy(df: DataFolder, rel: str, scratch: Path | None) -> Path:
    """A local path of ``rel``: itself in a local folder, else a copy downloaded once into
    ``scratch`` (memory-mapped files, files read many times)."""
    root = local_root(df)
    if root is not None:
        return root / rel
    if scratch is None:
        raise ValueError(f"{df.unstrip_protocol(df._join(rel))}: a remote file needs a scratch folder to be read here")
    dest = scratch / "in" / df.path.strip("/").replace("/", "_") / rel
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        df.get_file(rel, str(tmp))
        os.replace(tmp, dest)
    return dest


def read_parquet(df: DataFolder, rel: str, **kw):
    """``pq.read_table`` of a file in a local folder or on object storage."""
    import pyarrow.parquet as pq

    root = local_root(df)
    if root is not None:
        return pq.read_table(root / rel, **kw)
    with df.open(rel, "rb") as f:
        return pq.read_table(f, **kw)


def parquet_batches(df: DataFolder, rel: str, **kw):
    """``pq.ParquetFile(...).iter_batches(**kw)`` of a file in a local folder or on object storage."""
    import pyarrow.parquet as pq

    root = local_root(df)
    if root is not None:
        yield from pq.ParquetFile(root / rel).iter_batches(**kw)
        return
    with df.open(rel, "rb") as f:
        yield from pq.ParquetFile(f).iter_batches(**kw)


def parquet_row_groups(df: DataFolder, rel: str, rows: int, **kw):
    """A file's rows as tables of whole consecutive row groups, each of at least ``rows`` rows (the
    last may hold fewer), local or on object storage. Not ``iter_batches``: that copies the row
    groups into batches of its size, and its read-ahead held more memory than the whole table
    (a 138 MB file of 1,000-row groups: peak RSS 577 MB whole, 624-647 MB in 64k-row batches,
    312-322 MB in sets of 16 row groups, which took no longer than the whole read)."""
    import pyarrow.parquet as pq

    def sets(pf):
        meta, start, n = pf.metadata, 0, 0
        for g in range(meta.num_row_groups):
            n += meta.row_group(g).num_rows
            if n >= rows or g == meta.num_row_groups - 1:
                yield pf.read_row_groups(list(range(start, g + 1)), **kw)
                start, n = g + 1, 0

    root = local_root(df)
    if root is not None:
        yield from sets(pq.ParquetFile(root / rel))
        return
    with df.open(rel, "rb") as f:
        yield from sets(pq.ParquetFile(f))


def read_text(df: DataFolder, rel: str) -> str:
    root = local_root(df)
    if root is not None:
        return (root / rel).read_text(encoding="utf-8", errors="replace")
    with df.open(rel, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


# ------------------------------------------------------------------------- writing
@contextlib.contextmanager
def writing(df: DataFolder, rel: str, mode: str = "wb", *, durable: bool = False):
    """``with writing(df, "x/y.parquet") as f``: the file appears complete or not at all. Local:
    ``cumed.atomic.replacing``; object storage: written to scratch, then uploaded in one put."""
    root = local_root(df)
    if root is not None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        with replacing(root / rel, mode, durable=durable) as f:
            yield f
        return
    with task_scratch("upload") as tmp:
        local = tmp / PurePosixPath(rel).name
        with open(local, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
        df.put_file(str(local), rel)


def write_text(df: DataFolder, rel: str, text: str, *, durable: bool = False) -> None:
    with writing(df, rel, "w", durable=durable) as f:
        f.write(text)


def write_parquet(df: DataFolder, rel: str, table, **kw) -> None:
    import pyarrow.parquet as pq

    with writing(df, rel, "wb") as f:
        pq.write_table(table, f, **kw)


@contextlib.contextmanager
def parquet_writer(df: DataFolder, rel: str, schema, **kw):
    """``with parquet_writer(df, "x/y.parquet", schema) as w: w.write_table(...)``: a
    ``pq.ParquetWriter`` whose file appears complete, or not at all (``writing``)."""
    import pyarrow.parquet as pq

    with writing(df, rel, "wb") as f, pq.ParquetWriter(f, schema, **kw) as w:
        yield w


@contextlib.contextmanager
def staged(df: DataFolder, last: tuple[str, ...] = ()):
    """A local folder to write a task's files into: ``df`` itself when local; else a scratch
    folder whose files are uploaded to ``df`` when the block ends without error (those whose
    name matches a pattern of ``last`` after the others: they mark the set complete)."""
    root = local_root(df)
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
        yield root
        return
    with task_scratch("out") as tmp:
        yield tmp
        files = sorted(f.relative_to(tmp).as_posix() for f in tmp.rglob("*") if f.is_file() and not f.name.startswith("."))
        late = [f for f in files if any(fnmatch.fnmatch(PurePosixPath(f).name, p) for p in last)]
        for f in [f for f in files if f not in late] + late:
            df.put_file(str(tmp / f), f)


@contextlib.contextmanager
def local_view(url, parts: list[str]):
    """The ``parts`` (folders or files) of a work folder as a local folder: the folder itself
    when local, else a scratch copy of just those parts, deleted on exit (the driver reads the
    final outputs to publish them)."""
    df = folder(url)
    root = local_root(df)
    if root is not None:
        yield root
        return
    with task_scratch("view") as tmp:
        for part in parts:
            for rel in names(df, "*", part, recursive=True) if not part.endswith(".json") else (
                    [part] if exists(df, part) else []):
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                df.get_file(rel, str(tmp / rel))
        yield tmp


def remove(url) -> None:
    """Delete a work folder (``keep_work=False``)."""
    if not is_url(url):
        shutil.rmtree(url, ignore_errors=True)
        return
    df = folder(url)
    with contextlib.suppress(FileNotFoundError):
        df.fs.rm(df.path, recursive=True)


# ------------------------------------------------------------------------- errors
@contextlib.contextmanager
def remote_errors(url: str, role: str):
    """An error of the object store as one ``CumedError`` naming ``role`` (--raw, --work...), the
    URL and the fix: missing credentials, access denied, no such bucket, unreachable endpoint."""
    try:
        yield
    except CumedError:
        raise
    except Exception as e:  # noqa: BLE001 - translated into one clear line, or re-raised
        msg = explain(e)
        if msg is None:
            raise
        raise CumedError(f"{role} {url}: {msg}") from e


def explain(e: BaseException) -> str | None:
    """What went wrong talking to object storage, and the fix; None when ``e`` is something else."""
    names_ = {type(c).__name__ for c in _chain(e)}
    text = " ".join(str(c) for c in _chain(e))
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or "the default endpoint"
    if names_ & {"NoCredentialsError", "PartialCredentialsError"} or "Unable to locate credentials" in text:
        return "no credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
    if names_ & {"EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError"} or "Could not connect" in text:
        return f"cannot reach {endpoint}; check AWS_ENDPOINT_URL and the network"
    if "NoSuchBucket" in text or "bucket does not exist" in text.lower():
        return "the bucket does not exist; create it or fix the URL"
    if isinstance(e, PermissionError) or names_ & {"AccessDenied"} or any(
            k in text for k in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403")):
        return "access denied; check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE and the bucket policy"
    return None


def _chain(e: BaseException):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def check_reachable(url: str, role: str) -> None:
    """Fail before any work on a URL whose bucket is missing or whose credentials do not work."""
    if not is_url(url):
        return
    df = folder(url)
    protocol = df.fs.protocol if isinstance(df.fs.protocol, str) else df.fs.protocol[0]
    if protocol not in BUCKET_PROTOCOLS:
        return
    bucket = df.path.strip("/").split("/")[0]
    with remote_errors(url, role):
        try:
            df.fs.info(bucket)  # not ``exists``: it answers False for missing credentials too
        except FileNotFoundError:
            raise CumedError(f"{role} {url}: bucket {bucket!r} does not exist (endpoint "
                             f"{os.environ.get('AWS_ENDPOINT_URL') or 'default'}); create it or fix the URL") from None
