"""Remote (s3://) store benchmark against a local moto_server, next to plain s3fs put/get.

Run by hand:  .venv/bin/python benchmarks/remote_store_bench.py [--mb 200] [--out /tmp/remote-bench]

1. Generates --mb MB of (poorly compressible) document text in memory and publishes them once to a LOCAL store (the staging cost is
   what `Store.publish` already costs; measured separately as ``local_publish``).
2. ``push``: promotes that local version to s3:// (claim, sha256 check, upload, manifest).
3. ``s3fs_put``: plain ``s3fs.put`` of the same Parquet files to another prefix (baseline).
4. ``pull``: downloads the version into a fresh local store, verifying every sha256.
5. ``s3fs_get``: plain ``s3fs.get`` of the same files (baseline, no verification).
6. ``publish``: end-to-end ``RemoteStore.publish`` of the rows (stage locally + push).

The server is moto (in-memory, single Python process), so absolute rates reflect moto; the
ratio to plain s3fs is the meaningful number.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa  # noqa: E402


def rows(mb: float, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    alphabet = np.array(list("患者男女岁尿频急前列腺特异抗原血压心率诊断治疗药物剂量检查结果正常异常"))
    target, made, i = mb * 1e6, 0, 0
    while made < target:
        n = 8192
        texts = ["".join(rng.choice(alphabet, 200)) for _ in range(n)]  # random: compresses poorly, like real text
        ids = [f"doc-{i + k:09d}" for k in range(n)]
        made += sum(len(t.encode()) for t in texts)
        i += n
        yield pa.table({"id": ids, "text": texts, "source": ["bench"] * n, "category": ["qa"] * n,
                        "department": ["d"] * n, "n_chars": [200] * n, "metadata": ["{}"] * n})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=200)
    ap.add_argument("--out", default="/tmp/remote-store-bench")
    a = ap.parse_args()
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moto = Path(sys.executable).with_name("moto_server")
    server = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        import boto3
        import s3fs

        from cumed.store import Store

        boto3.client("s3").create_bucket(Bucket="bench")
        res = {}
        batches = list(rows(a.mb))  # generated up front: timings measure the store, not the generator
        t = time.perf_counter()
        local = Store(out / "local").publish("bench", batches)
        res["local_publish_s"] = time.perf_counter() - t
        nbytes = sum(f["bytes"] for f in local.manifest["files"])
        res["parquet_bytes"] = nbytes
        res["files"] = len(local.manifest["files"])
        remote = Store("s3://bench/store")
        t = time.perf_counter()
        dv = remote.push(local)
        res["push_s"] = time.perf_counter() - t
        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": os.environ["AWS_ENDPOINT_URL"]})
        t = time.perf_counter()
        fs.put([str(p) for p in local.files("data")], "bench/plain/", recursive=False)
        res["s3fs_put_s"] = time.perf_counter() - t
        t = time.perf_counter()
        pulled = remote.pull(dv.ref, out / "pulled")
        res["pull_s"] = time.perf_counter() - t
        assert pulled["downloaded"] == res["files"]
        (out / "plainget").mkdir()
        t = time.perf_counter()
        fs.get([f"bench/plain/{p.name}" for p in local.files("data")], str(out / "plainget") + "/")
        res["s3fs_get_s"] = time.perf_counter() - t
        t = time.perf_counter()
        again = remote.pull(dv.ref, out / "pulled")
        res["pull_noop_s"] = time.perf_counter() - t
        assert again["downloaded"] == 0
        shutil.rmtree(out / "local")
        t = time.perf_counter()
        dv2 = Store("s3://bench/store2").publish("bench", batches)
        res["publish_end_to_end_s"] = time.perf_counter() - t
        assert dv2.content_hash == dv.content_hash
        mb = nbytes / 1e6
        for k in ("push", "s3fs_put", "pull", "s3fs_get", "publish_end_to_end", "local_publish"):
            res[f"{k}_MBps"] = round(mb / res[f"{k}_s"], 1)
        res = {k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}
        print(json.dumps(res, indent=2))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
