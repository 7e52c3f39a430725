"""The versioned store on S3-compatible object storage (``s3://bucket/prefix``).

Same layout and public API as the local :class:`cumed.store.Store`::

    s3://bucket/prefix/<name>/v<N>/.claim              who claimed N (conditional put)
    s3://bucket/prefix/<name>/v<N>/.claim-<G>          who took N over from a dead publisher
    s3://bucket/prefix/<name>/v<N>/data/*.parquet
    s3://bucket/prefix/<name>/v<N>/removed/*.parquet
    s3://bucket/prefix/<name>/v<N>/README.md
    s3://bucket/prefix/<name>/v<N>/manifest.json       written LAST: the commit

Object stores have no atomic rename, so publishing is:

1. stage the version locally with the local store (same writer, so the bytes and sha256 of
   every Parquet file equal a local publish of the same rows);
2. claim ``N`` with ``put_object(.claim, IfNoneMatch="*")``; a publisher whose conditional put
   fails (``PreconditionFailed``) tries ``N+1``, so two publishers never share a version;
3. upload data and removed files, then ``README.md``, then ``manifest.json`` (also
   ``IfNoneMatch="*"``). Readers list only versions whose manifest exists, so a crash at any
   moment leaves no visible half version; ``gc`` deletes claims and files of versions without a
   manifest whose newest object is older than a grace period (default 1 hour).

Claims are never deleted from committed versions: deleting one would let a late publisher
claim a committed number and overwrite its files.

Publishing rows identical to the latest version returns that version, as the local store does
under its lock. Here the claim order stands in for the lock: each claim records the content
hash, and a publisher whose claim sits right above an identical one still in flight waits for
it to commit, then withdraws its own (uncommitted, still empty) claim and returns that version.
A publisher in flight keeps a ``.alive`` heartbeat; one whose heartbeat stops for
``CUMED_REMOTE_STALE_S`` seconds (or whose process is gone, on the same host) is presumed dead
and the waiter publishes its own version.

A push killed mid-upload is resumed, not renumbered: when the newest claim is uncommitted, holds
the same content and its publisher is provably dead (same host, process gone), the re-run takes
the number over with a claim of the next generation (``.claim-1``, ``.claim-2`` ...; the
highest generation owns the number, and each is a conditional put, so two re-runs cannot both
take it) and uploads only the files not already there with their sha256. A claim from another
host is never taken over: its publisher may only be slow, and could still delete what a taker
wrote; the re-run publishes the next number, as before.

Credentials, endpoint and region come from the standard AWS environment (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_REGION`` ...); they are
never logged nor written into a manifest. Data files are read through fsspec/s3fs; control
operations (list, claim, commit, download) use boto3.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cumed.errors import CumedError
from cumed.atomic import fsync_dir, write_json
from cumed.hashing import sha256_file
from cumed.schemas import FILE_KINDS
from cumed.store.base import Store
from cumed.store.local import LocalStore
from cumed.store.manifest import check_manifest
from cumed.store.refs import (MODELS_PREFIX, NAME_RE, S3_RE, TMP_PREFIX, default_store,
                              validate_name)
from cumed.store.version import DatasetVersion, VerifyResult, default_card

VERSION_KEY_RE = re.compile(r"^v([1-9][0-9]*)/(.*)$")
CLAIM_RE = re.compile(r"^\.claim(?:-([1-9][0-9]*))?$")  # generation 0 is ".claim"
DEFAULT_GRACE_S = 3600.0
CHUNK = 8 << 20
# What S3-compatible servers answer when a conditional put finds the key taken.
CONFLICT_CODES = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
# A live publisher rewrites v<N>/.alive this often; a waiter presumes it dead after STALE_S
# seconds without a change (its own clock, so skew between hosts does not matter).
HEARTBEAT_S = 20.0
STALE_S = 120.0

# Fault-injection for the crash tests: SIGKILL the process after this many files.
CRASH_AFTER_UPLOADS = "CUMED_REMOTE_CRASH_AFTER_UPLOADS"
CRASH_AFTER_DOWNLOADS = "CUMED_REMOTE_CRASH_AFTER_DOWNLOADS"



def default_cache() -> Path:
    return Path(os.environ.get("CUMED_CACHE") or Path.home() / ".cache" / "cumed" / "store")


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                disable=not enabled, leave=False)


def _maybe_crash(var: str, done: int) -> None:
    n = os.environ.get(var)
    if n and done >= int(n):
        os.kill(os.getpid(), 9)


class RemoteDatasetVersion(DatasetVersion):
    """A published version on object storage; its files are read through fsspec (s3fs)."""

    def __init__(self, url: str, manifest: dict, fs):
        self.path = url  # an s3:// URL string, not a Path
        self.manifest = manifest
        self.fs = fs

    def files(self, part: str = "data") -> list[str]:
        return [f"{self.path}/{f['path']}" for f in self.manifest["files"] if f["path"].startswith(part + "/")]

    @property
    def data_dir(self) -> str:
        return f"{self.path}/data"

    def _schema(self, part: str):
        files = self.files(part)
        if not files:
            return None
        with self.fs.open(files[0], "rb") as fh:
            return pq.read_schema(fh)

    def to_arrow(self, part: str = "data", columns: list[str] | None = None) -> pa.Table:
        files = self.files(part)
        if not files:
            return super().to_arrow(part, columns)
        tables = []
        for f in files:
            with self.fs.open(f, "rb", block_size=CHUNK) as fh:
                tables.append(pq.read_table(fh, columns=columns))
        return pa.concat_tables(tables)

    def iter_batches(self, part: str = "data", batch_size: int = 8192, columns: list[str] | None = None):
        for f in self.files(part):
            with self.fs.open(f, "rb", block_size=CHUNK) as fh:
                yield from pq.ParquetFile(fh).iter_batches(batch_size=batch_size, columns=columns)

    def to_hf(self, part: str = "data"):
        """In-memory ``datasets.Dataset``; for large versions ``RemoteStore.pull`` first."""
        try:
            import datasets
            from datasets.table import InMemoryTable
        except ImportError as e:  # pragma: no cover
            raise CumedError("to_hf() needs Hugging Face datasets: pip install 'cumed[hf]'") from e
        return datasets.Dataset(InMemoryTable(self.to_arrow(part)))

    def card(self) -> str:
        try:
            return self.fs.cat(f"{self.path}/README.md").decode("utf-8")
        except FileNotFoundError:
            return ""


class RemoteStore(Store, scheme="s3"):
    """A store root on S3-compatible object storage. See the module docstring."""

    def __init__(self, root: str | None = None, create: bool = True):
        root = str(root if root is not None else default_store())
        m = S3_RE.match(root)
        if not m:
            raise CumedError(f"store {root!r}: expected s3://BUCKET[/PREFIX]")
        self.url = root.rstrip("/")
        self.bucket = m.group(1)
        prefix = m.group(2).strip("/")
        self.prefix = prefix + "/" if prefix else ""
        self.root = self.url  # for messages; never a Path here
        import boto3
        from botocore.config import Config

        attempts = int(os.environ.get("AWS_MAX_ATTEMPTS") or 3)
        cfg = Config(retries={"max_attempts": attempts, "mode": "standard"}, connect_timeout=5, read_timeout=120,
                     max_pool_connections=32)
        self.client = boto3.session.Session().client("s3", config=cfg)
        self.endpoint = re.sub(r"//[^@/]*@", "//", self.client.meta.endpoint_url or "")  # strip any userinfo
        # Fail early, with one line, on credentials / bucket / endpoint problems.
        self._call(self.client.head_bucket, Bucket=self.bucket, _head_bucket=True)
        self._fs = None
        self._conditional_ok = False
        self.last_push: dict | None = None  # what the last push uploaded, skipped, resumed

    # ---- plumbing

    @property
    def fs(self):
        if self._fs is None:
            import s3fs

            ck = {"endpoint_url": self.client.meta.endpoint_url}
            if self.client.meta.region_name:
                ck["region_name"] = self.client.meta.region_name
            self._fs = s3fs.S3FileSystem(client_kwargs=ck, default_block_size=CHUNK)
        return self._fs

    def _explain(self, e: Exception, head_bucket: bool = False) -> Exception:
        from botocore.exceptions import (BotoCoreError, ClientError, ConnectionClosedError, ConnectTimeoutError,
                                         EndpointConnectionError, NoCredentialsError, PartialCredentialsError,
                                         ReadTimeoutError)

        where = f"store {self.url} (endpoint {self.endpoint})"
        if isinstance(e, ClientError):
            code = _error_code(e)
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "ExpiredToken",
                        "InvalidToken", "AccessDenied", "AuthorizationHeaderMalformed", "403") or status == 403:
                return CumedError(f"{where}: access denied ({code or status}); check AWS_ACCESS_KEY_ID / "
                                  f"AWS_SECRET_ACCESS_KEY / AWS_PROFILE and the bucket policy")
            if code == "NoSuchBucket" or (head_bucket and (code == "404" or status == 404)):
                return CumedError(f"{where}: bucket {self.bucket!r} does not exist; create it or fix the s3:// URL")
            return CumedError(f"{where}: S3 error {code or status}: {e.response.get('Error', {}).get('Message', '')}")
        if isinstance(e, (NoCredentialsError, PartialCredentialsError)):
            return CumedError(f"{where}: no AWS credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                              f"(or AWS_PROFILE)")
        if isinstance(e, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError, ReadTimeoutError)):
            return CumedError(f"{where}: cannot reach the endpoint ({type(e).__name__}); check AWS_ENDPOINT_URL "
                              f"and the network")
        if isinstance(e, BotoCoreError):
            return CumedError(f"{where}: {type(e).__name__}: {e}")
        return e

    def _call(self, fn, *args, _head_bucket: bool = False, **kw):
        try:
            return fn(*args, **kw)
        except Exception as e:  # noqa: BLE001 - translated into one clear line
            raise self._explain(e, _head_bucket) from e

    def _key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    def _url(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self._key(*parts)}"

    def _objects(self, prefix: str) -> list[dict]:
        out = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        try:
            for page in pages:
                out.extend(page.get("Contents", []))
        except Exception as e:  # noqa: BLE001
            raise self._explain(e) from e
        return out

    def _version_objects(self, name: str) -> dict[int, dict[str, dict]]:
        """{N: {relative key: object}} for every v<N>/ prefix of ``name`` (complete or not)."""
        base = self._key(validate_name(name)) + "/"
        out: dict[int, dict[str, dict]] = {}
        for obj in self._objects(base):
            m = VERSION_KEY_RE.match(obj["Key"][len(base):])
            if m:
                out.setdefault(int(m.group(1)), {})[m.group(2)] = obj
        return out

    def _version_objects_of(self, name: str, n: int) -> list[str]:
        """Relative keys under ``v<n>/`` (one version's listing, not the whole dataset's)."""
        base = self._key(name, f"v{n}") + "/"
        return [o["Key"][len(base):] for o in self._objects(base)]

    # ---- listing

    def names(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix,
                                                                       Delimiter="/")
        found = []
        try:
            for page in pages:
                for cp in page.get("CommonPrefixes", []):
                    found.append(cp["Prefix"][len(self.prefix):].rstrip("/"))
        except Exception as e:  # noqa: BLE001
            raise self._explain(e) from e
        return sorted(n for n in found if NAME_RE.match(n) and ".." not in n and self.versions(n))

    def versions(self, name: str) -> list[int]:
        """Complete versions only: those whose manifest.json (the commit) exists."""
        return sorted(n for n, objs in self._version_objects(name).items() if "manifest.json" in objs)

    def _subroot(self, folder: str) -> str:
        return f"{self.url}/{folder}"

    @property
    def location(self) -> str:
        return self.url

    def _open(self, name: str, version: int) -> RemoteDatasetVersion:
        key = self._key(name, f"v{version}", "manifest.json")
        body = self._call(self.client.get_object, Bucket=self.bucket, Key=key)["Body"].read()
        try:
            manifest = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CumedError(f"unreadable manifest s3://{self.bucket}/{key}: {e}; the version is damaged") from e
        check_manifest(manifest, f"s3://{self.bucket}/{key}", name, version)
        return RemoteDatasetVersion(self._url(name, f"v{version}"), manifest, self.fs)

    # ---- publishing

    def publish(self, name: str, data, *, progress: bool = False, **kw) -> RemoteDatasetVersion:
        """Stage the rows with the local store (identical bytes and hashes), then :meth:`push` them."""
        validate_name(name)
        stage = tempfile.mkdtemp(prefix="cumed-stage-", dir=os.environ.get("CUMED_STAGE_DIR"))
        try:
            local = LocalStore(stage).publish(name, data, **kw)
            return self.push(local, progress=progress)
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def publish_files(self, name: str, files: dict, **kw) -> RemoteDatasetVersion:
        """Stage the files with the local store (same manifest and hashes), then :meth:`push` them."""
        validate_name(name)
        stage = tempfile.mkdtemp(prefix="cumed-stage-", dir=os.environ.get("CUMED_STAGE_DIR"))
        try:
            return self.push(LocalStore(stage).publish_files(name, files, **kw))
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def push(self, local: DatasetVersion, *, name: str | None = None, progress: bool = False,
             workers: int = 4) -> RemoteDatasetVersion:
        """Promote a local version: same files, same sha256, next free remote version number.
        A model artifact goes to the remote models store, as it sits in the local one."""
        self.last_push = None
        if local.kind in FILE_KINDS and not self.url.endswith("/" + MODELS_PREFIX.rstrip("/")):
            models = self.models()
            dv = models.push(local, name=name, progress=progress, workers=workers)
            self.last_push = models.last_push
            return dv
        name = validate_name(name or local.name)
        src = dict(local.manifest)
        # Every local file must match its manifest hash before it is promoted.
        for f in src["files"]:
            p = Path(local.path) / f["path"]
            if not p.is_file() or p.stat().st_size != f["bytes"]:
                raise CumedError(f"{local.ref}: {f['path']} is missing or has the wrong size; run `cumed datasets verify`")
        existing = self._version_objects(name)
        complete = sorted(n for n, o in existing.items() if "manifest.json" in o)
        if complete:
            prev = self.get(f"{name}@{complete[-1]}")
            if prev.manifest.get("content_hash") == src.get("content_hash"):
                return prev
        owner = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "id": uuid.uuid4().hex,
                            "t": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "content_hash": src.get("content_hash")}).encode()
        self._require_conditional_puts()
        claimed = self._take_over_dead(name, existing, src.get("content_hash"), owner)
        n = max(existing, default=0) + 1
        while claimed is None:
            if self._try_claim(name, n, ".claim", owner):
                claimed = (n, ".claim")
            else:
                n += 1
        n, claim = claimed
        manifest = {**src, "name": name, "version": n}
        heartbeat = _Heartbeat(self, name, n)
        try:
            twin = self._identical_in_flight(name, n, src.get("content_hash"))
            if twin is not None:
                heartbeat.stop()
                self._withdraw_claim(name, n, claim)
                return twin
            self.last_push = {"resumed": claim != ".claim",
                              **self._upload_files(local, name, n, progress, workers)}
            card = (Path(local.path) / "README.md")
            text = card.read_text(encoding="utf-8") if card.is_file() else ""
            if not text or text == default_card(src):
                text = default_card(manifest)
            self._call(self.client.put_object, Bucket=self.bucket, Key=self._key(name, f"v{n}", "README.md"),
                       Body=text.encode("utf-8"), ContentType="text/markdown; charset=utf-8")
            body = json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8")
            # The commit: once this object exists, readers see version n.
            self._call(self.client.put_object, Bucket=self.bucket, Key=self._key(name, f"v{n}", "manifest.json"),
                       Body=body, IfNoneMatch="*", ContentType="application/json")
        except BaseException:
            heartbeat.stop()
            self._delete_prefix(self._key(name, f"v{n}") + "/", keep_manifest=True)
            raise
        heartbeat.stop()
        return RemoteDatasetVersion(self._url(name, f"v{n}"), manifest, self.fs)

    def _try_claim(self, name: str, n: int, claim: str, owner: bytes) -> bool:
        """Conditional put of ``v<n>/<claim>``; False when the key is taken. Read back, because
        only our own bytes prove the number is ours."""
        key = self._key(name, f"v{n}", claim)
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=owner, IfNoneMatch="*")
        except Exception as e:  # noqa: BLE001
            if _error_code(e) in CONFLICT_CODES:
                return False
            raise self._explain(e) from e
        if self._call(self.client.get_object, Bucket=self.bucket, Key=key)["Body"].read() != owner:
            raise CumedError(f"store {self.url}: the claim on {name}@{n} was overwritten by another publisher; "
                             f"this endpoint does not honour conditional writes (If-None-Match): use an "
                             f"S3-compatible store that does, or publish from one machine at a time")
        return True

    def _take_over_dead(self, name: str, existing: dict[int, dict], content_hash: str | None,
                        owner: bytes) -> tuple[int, str] | None:
        """(n, claim key) when the newest, uncommitted version was claimed for the same content
        by a publisher that is provably dead (this host, process gone) and we now own it."""
        if not existing:
            return None
        n = max(existing)
        if "manifest.json" in existing[n]:
            return None
        gen = _claim_generation(existing[n])
        if gen is None:
            return None
        claim = self._read_claim(name, n)
        if not claim or claim.get("content_hash") != content_hash or not _dead_on_this_host(claim):
            return None
        key = f".claim-{gen + 1}"
        return (n, key) if self._try_claim(name, n, key, owner) else None

    def _identical_in_flight(self, name: str, n: int, content_hash: str | None,
                             poll_s: float = 0.5) -> RemoteDatasetVersion | None:
        """The version just below claim ``n`` when it holds the same content, once committed.

        Looks only at the nearest claim below: that is the version a serial publish would have
        compared with. Returns None (publish ours) when it differs, or when its publisher
        looks dead; waits while it is alive and still uploading.
        """
        stale_s = float(os.environ.get("CUMED_REMOTE_STALE_S", STALE_S))
        last: tuple[int, object, float] | None = None  # (version, newest object time, first seen here)
        while True:
            objs = self._version_objects(name)
            below = [m for m in objs if m < n]
            if not below:
                return None
            m = max(below)
            if "manifest.json" in objs[m]:
                prev = self.get(f"{name}@{m}")
                return prev if prev.content_hash == content_hash else None
            claim = self._read_claim(name, m)
            if claim is None:  # withdrawn or cleaned up between the listing and the read
                continue
            if claim.get("content_hash") != content_hash or _dead_on_this_host(claim):
                return None
            newest = max(o["LastModified"] for o in objs[m].values())
            now = time.monotonic()
            if last is None or last[:2] != (m, newest):
                last = (m, newest, now)
            elif now - last[2] > stale_s:
                return None
            time.sleep(poll_s)

    def _read_claim(self, name: str, n: int) -> dict | None:
        """The current owner's claim on ``n`` (its highest generation); None when there is none."""
        gen = _claim_generation({k: None for k in self._version_objects_of(name, n)})
        if gen is None:
            return None
        try:
            key = self._key(name, f"v{n}", ".claim" if gen == 0 else f".claim-{gen}")
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as e:  # noqa: BLE001
            if _error_code(e) in ("NoSuchKey", "404"):
                return None
            raise self._explain(e) from e
        try:
            return json.loads(body)
        except ValueError:
            return {}

    def _require_conditional_puts(self) -> None:
        """Refuse an endpoint that ignores ``If-None-Match: *``: on it two publishers would claim
        one version number and overwrite each other's files, silently. Probed once per store object
        with a throw-away key (two puts and a delete)."""
        if self._conditional_ok:
            return
        key = f"{self.prefix}.cumed-probe/{uuid.uuid4().hex}"
        self._call(self.client.put_object, Bucket=self.bucket, Key=key, Body=b"1", IfNoneMatch="*")
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"2", IfNoneMatch="*")
            honoured = False
        except Exception as e:  # noqa: BLE001
            if _error_code(e) not in CONFLICT_CODES:
                raise self._explain(e) from e
            honoured = True
        finally:
            self._call(self.client.delete_object, Bucket=self.bucket, Key=key)
        if not honoured:
            raise CumedError(f"store {self.url} ignores conditional writes (If-None-Match: *): two publishers could "
                             f"claim one version and overwrite it; nothing was published. Use an endpoint that "
                             f"supports conditional PUT (AWS S3, MinIO, Ceph RGW and R2 do)")
        self._conditional_ok = True

    def _withdraw_claim(self, name: str, n: int, claim: str = ".claim") -> None:
        """Give back an uncommitted, empty claim: heartbeat first, so the number frees last."""
        for obj in (".alive", claim):
            self._call(self.client.delete_object, Bucket=self.bucket, Key=self._key(name, f"v{n}", obj))

    def _upload_files(self, local: DatasetVersion, name: str, n: int, progress: bool, workers: int) -> None:
        from boto3.s3.transfer import TransferConfig

        files = local.manifest["files"]
        tc = TransferConfig(multipart_threshold=CHUNK, multipart_chunksize=CHUNK, max_concurrency=8)
        bar = _progress(sum(f["bytes"] for f in files), f"push {name}@{n}", progress)
        lock = threading.Lock()
        done = [0]

        there = self._version_objects(name).get(n, {})
        skipped = []

        def one(f):
            p = Path(local.path) / f["path"]
            if sha256_file(p) != f["sha256"]:
                raise CumedError(f"{local.ref}: {f['path']} does not match its sha256; the local version is damaged")
            key = self._key(name, f"v{n}", f["path"])
            if f["path"] in there and self._remote_sha256(key) == f["sha256"]:  # a dead push's finished upload
                with lock:
                    skipped.append(f["path"])
                bar.update(f["bytes"])
                return
            self._call(self.client.upload_file, str(p), self.bucket, key, Config=tc, Callback=bar.update,
                       ExtraArgs={"Metadata": {"sha256": f["sha256"]}})
            with lock:
                done[0] += 1
                _maybe_crash(CRASH_AFTER_UPLOADS, done[0])

        crash_test = bool(os.environ.get(CRASH_AFTER_UPLOADS))
        try:
            with ThreadPoolExecutor(max_workers=1 if crash_test else workers) as pool:
                list(pool.map(one, files))
        finally:
            bar.close()
        return {"uploaded": len(files) - len(skipped), "skipped": sorted(skipped)}

    def _remote_sha256(self, key: str) -> str | None:
        """The sha256 a cumed upload recorded in the object's metadata (None: not ours, or gone)."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key).get("Metadata", {}).get("sha256")
        except Exception:  # noqa: BLE001 - then it is uploaded again
            return None

    def _delete_prefix(self, prefix: str, keep_manifest: bool = False) -> int:
        """Best-effort delete of an abandoned version (never a committed one)."""
        try:
            objs = self._objects(prefix)
            if keep_manifest and any(o["Key"].endswith("/manifest.json") and o["Key"].count("/") == prefix.count("/")
                                     for o in objs):
                return 0
            keys = [{"Key": o["Key"]} for o in objs]
            for i in range(0, len(keys), 1000):
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys[i:i + 1000], "Quiet": True})
            return len(keys)
        except Exception:  # noqa: BLE001 - gc will retry
            return 0

    # ---- pulling

    def pull(self, ref: str, to: str | os.PathLike | None = None, *, progress: bool = False,
             workers: int = 4) -> dict:
        """Download a version into a local store root (default: the cache), verifying every sha256.

        Resumable: files already present with the right sha256 are not downloaded again. The
        result is a normal local version: ``Store(result["store"]).get(ref)`` reads it.
        """
        from boto3.s3.transfer import TransferConfig

        st, ref = self.route(ref)
        if st is not self:  # a model artifact: pulled into the models store of ``to``
            return st.pull(ref, None if to is None else Path(to) / MODELS_PREFIX.rstrip("/"), progress=progress,
                           workers=workers)
        dv = self.get(ref)
        root = Path(to) if to is not None else default_cache() / self.bucket / self.prefix.rstrip("/")
        folder = root / dv.name
        final = folder / f"v{dv.version}"
        work = final if (final / "manifest.json").is_file() else folder / f"{TMP_PREFIX}pull-v{dv.version}"
        for sub in ("data", "removed"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        if work != final:
            (work / ".owner").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "t": time.time()}))
        files = dv.manifest["files"]
        todo, skipped = [], 0
        for f in files:
            p = work / f["path"]
            if p.is_file() and p.stat().st_size == f["bytes"] and sha256_file(p) == f["sha256"]:
                skipped += 1
            else:
                todo.append(f)
        tc = TransferConfig(multipart_threshold=CHUNK, multipart_chunksize=CHUNK, max_concurrency=8)
        bar = _progress(sum(f["bytes"] for f in todo), f"pull {dv.ref}", progress)
        lock = threading.Lock()
        done = [0]

        def one(f):
            p = work / f["path"]
            part = p.with_name(p.name + ".part")
            self._call(self.client.download_file, self.bucket, self._key(dv.name, f"v{dv.version}", f["path"]),
                       str(part), Config=tc, Callback=bar.update)
            if part.stat().st_size != f["bytes"] or sha256_file(part) != f["sha256"]:
                part.unlink(missing_ok=True)
                raise CumedError(f"{dv.ref}: downloaded {f['path']} does not match the manifest sha256; the remote "
                                 f"copy is damaged: re-publish it (or pull again if the transfer was cut)")
            with open(part, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(part, p)
            with lock:
                done[0] += 1
                _maybe_crash(CRASH_AFTER_DOWNLOADS, done[0])

        crash_test = bool(os.environ.get(CRASH_AFTER_DOWNLOADS))
        t0 = time.perf_counter()
        try:
            with ThreadPoolExecutor(max_workers=1 if crash_test else workers) as pool:
                list(pool.map(one, todo))
        finally:
            bar.close()
        # A download killed mid-transfer leaves its temporary file (boto3 writes ``<name>.<random>``,
        # then renames): never commit a file the manifest does not list.
        listed = {f["path"] for f in files}
        for sub in ("data", "removed"):
            for stray in (work / sub).iterdir():
                if f"{sub}/{stray.name}" not in listed:
                    stray.unlink(missing_ok=True)
        if work != final:
            (work / "README.md").write_text(dv.card(), encoding="utf-8")
            write_json(work / "manifest.json", dv.manifest, indent=2)
            (work / ".owner").unlink(missing_ok=True)
            for sub in ("data", "removed"):
                fsync_dir(work / sub)
            fsync_dir(work)
            try:
                os.rename(work, final)
            except OSError:  # another pull finished first; its copy is verified too
                shutil.rmtree(work, ignore_errors=True)
            fsync_dir(folder)
        return {"ref": dv.ref, "from": dv.path, "store": str(root), "path": str(final), "files": len(files),
                "downloaded": len(todo), "skipped": skipped, "bytes_downloaded": sum(f["bytes"] for f in todo),
                "seconds": round(time.perf_counter() - t0, 3)}

    # ---- checking

    def verify(self, ref: str) -> VerifyResult:
        """Stream every object, recompute sha256, sizes and Parquet row counts."""
        st, ref = self.route(ref)
        if st is not self:
            return st.verify(ref)
        dv = self.get(ref)
        objs = self._version_objects(dv.name).get(dv.version, {})
        listed = {f["path"] for f in dv.manifest["files"]}
        for i, f in enumerate(dv.manifest["files"]):
            obj = objs.get(f["path"])
            if obj is None:
                return VerifyResult(dv.ref, False, i, "file missing", f["path"])
            if obj["Size"] != f["bytes"]:
                return VerifyResult(dv.ref, False, i, f"size {obj['Size']} != {f['bytes']} bytes", f["path"])
            key = self._key(dv.name, f"v{dv.version}", f["path"])
            h = hashlib.sha256()
            body = self._call(self.client.get_object, Bucket=self.bucket, Key=key)["Body"]
            for chunk in body.iter_chunks(CHUNK):
                h.update(chunk)
            if h.hexdigest() != f["sha256"]:
                return VerifyResult(dv.ref, False, i, "sha256 differs", f["path"])
            if f.get("rows") is None:  # a file version (a model): no rows to count
                continue
            try:
                with self.fs.open(f"{dv.path}/{f['path']}", "rb") as fh:
                    rows = pq.ParquetFile(fh).metadata.num_rows
            except Exception as e:  # noqa: BLE001
                return VerifyResult(dv.ref, False, i, f"unreadable Parquet: {e}", f["path"])
            if rows != f["rows"]:
                return VerifyResult(dv.ref, False, i, f"{rows} rows != {f['rows']}", f["path"])
        for rel in sorted(objs):
            if rel.startswith(("data/", "removed/")) and rel not in listed:
                return VerifyResult(dv.ref, False, len(listed), "file not in manifest", rel)
        total = sum(f["rows"] or 0 for f in dv.manifest["files"] if f["path"].startswith("data/"))
        if total != dv.rows:
            return VerifyResult(dv.ref, False, len(listed), f"data rows {total} != manifest rows {dv.rows}",
                                "manifest.json")
        return VerifyResult(dv.ref, True, len(listed))

    # diff() and list() are inherited: they only use names/versions/get/to_arrow.

    def gc(self, min_age_s: float | None = None) -> list[str]:
        """Delete claims and files of versions without a manifest whose newest object is older
        than ``min_age_s`` (default 1 hour, so live publishers are left alone)."""
        grace = DEFAULT_GRACE_S if min_age_s is None else float(min_age_s)
        now = datetime.now(timezone.utc)
        removed = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix,
                                                                       Delimiter="/")
        names = []
        try:
            for page in pages:
                names += [cp["Prefix"][len(self.prefix):].rstrip("/") for cp in page.get("CommonPrefixes", [])]
        except Exception as e:  # noqa: BLE001
            raise self._explain(e) from e
        for name in names:
            if not NAME_RE.match(name):
                continue
            for n, objs in sorted(self._version_objects(name).items()):
                if "manifest.json" in objs:
                    continue
                newest = max(o["LastModified"] for o in objs.values())
                if (now - newest).total_seconds() < grace:
                    continue
                self._delete_prefix(self._key(name, f"v{n}") + "/", keep_manifest=True)
                removed.append(f"{name}/v{n}")
        models = MODELS_PREFIX.rstrip("/")
        if models in names and not self.url.endswith("/" + models):  # the models store beside the datasets
            removed += [f"{models}/{r}" for r in self.models().gc(min_age_s)]
        return removed


def _error_code(e: Exception) -> str:
    """The S3 error code of a botocore ClientError ("" for anything else)."""
    return str(getattr(e, "response", {}).get("Error", {}).get("Code", ""))


class _Heartbeat:
    """Rewrites ``v<N>/.alive`` every HEARTBEAT_S seconds while a publisher holds claim N."""

    def __init__(self, store: RemoteStore, name: str, n: int):
        self._put = lambda: store.client.put_object(Bucket=store.bucket, Key=store._key(name, f"v{n}", ".alive"),
                                                    Body=b"")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat {name}@{n}")
        self._thread.start()

    def _beat(self) -> None:
        interval = float(os.environ.get("CUMED_REMOTE_HEARTBEAT_S", HEARTBEAT_S))
        while not self._stop.wait(interval):
            try:
                self._put()
            except Exception:  # noqa: BLE001 - a missed beat only makes waiters give up sooner
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _claim_generation(objs) -> int | None:
    """The highest claim generation among a version's objects (0: ``.claim``); None: unclaimed."""
    gens = [int(m.group(1) or 0) for k in objs if (m := CLAIM_RE.match(k))]
    return max(gens, default=None)


def _dead_on_this_host(claim: dict) -> bool:
    """True when the claim's publisher ran on this machine and its process is gone."""
    if claim.get("host") != socket.gethostname() or not isinstance(claim.get("pid"), int):
        return False
    if claim["pid"] == os.getpid():
        return False
    try:
        os.kill(claim["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False

