"""Store benchmark: publish / verify / scan ~1 GB of document rows next to plain pyarrow.parquet.

Run by hand:  .venv/bin/python benchmarks/store_bench.py [--gb 1.0] [--out /tmp/store-bench]

Each measurement runs in a fresh subprocess so peak RSS is per operation. "publish" streams
batches from a generator (the store never holds the dataset); the pyarrow baseline gets the
same rows as one in-memory table and ``pq.write_table`` (zstd, same row-group size), which is
the fastest plain way to write them. Scans read every column of every row.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROWS_PER_BATCH = 8192
# Rows are generated once into an Arrow IPC file that every operation memory-maps, so the
# timings measure writing and reading only (each op times itself, imports excluded).
PRE = r"""
import sys, time, pyarrow as pa
# Read (not memory-map) the rows so peak RSS shows what each op itself holds.
src = pa.ipc.open_file(pa.OSFile(sys.argv[1] + "/rows.arrow"))
def batches():
    for i in range(src.num_record_batches):
        yield src.get_batch(i)
t0 = time.perf_counter()
"""
POST = r"""
print("ELAPSED", time.perf_counter() - t0)
"""
OPS = {
    "publish": PRE + r"""
from cumed.store import Store
Store(sys.argv[1] + "/store").publish("bench", batches())
""" + POST,
    "pyarrow_write": PRE + r"""
import pyarrow.parquet as pq
pq.write_table(src.read_all(), sys.argv[1] + "/plain.parquet", compression="zstd", row_group_size=8192)
""" + POST,
    "verify": PRE + r"""
from cumed.store import Store
assert Store(sys.argv[1] + "/store").verify("bench@1").ok
""" + POST,
    "scan": PRE + r"""
from cumed.store import Store
n = sum(b.num_rows for b in Store(sys.argv[1] + "/store").get("bench@1").iter_batches())
""" + POST,
    "pyarrow_read": PRE + r"""
import pyarrow.parquet as pq
n = sum(b.num_rows for b in pq.ParquetFile(sys.argv[1] + "/plain.parquet").iter_batches(batch_size=8192))
""" + POST,
    "pyarrow_read_table": PRE + r"""
import pyarrow.parquet as pq
n = pq.read_table(sys.argv[1] + "/plain.parquet").num_rows
""" + POST,
}


def generate(folder: Path, gb: float) -> int:
    """~1.2 KB Chinese-like rows, varied so compression is honest; written once as Arrow IPC."""
    import random

    import pyarrow as pa

    rnd = random.Random(0)
    vocab = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)] + list("，。：；、（）0123456789mgml")
    done = i = 0
    sink = None
    while done < gb * 1e9:
        texts = ["".join(rnd.choices(vocab, k=rnd.randint(200, 600))) for _ in range(ROWS_PER_BATCH)]
        t = pa.table({"id": [f"doc-{i + k:09d}" for k in range(ROWS_PER_BATCH)], "text": texts,
                      "source": ["bench"] * ROWS_PER_BATCH, "category": ["qa"] * ROWS_PER_BATCH,
                      "department": ["泌尿外科"] * ROWS_PER_BATCH, "n_chars": [len(x) for x in texts],
                      "metadata": [json.dumps({"k": k}) for k in range(ROWS_PER_BATCH)]})
        if sink is None:
            sink = pa.ipc.new_file(str(folder / "rows.arrow"), t.schema)
        for b in t.to_batches():
            sink.write_batch(b)
        done += t.nbytes
        i += ROWS_PER_BATCH
    sink.close()
    return done


def run(op: str, folder: Path, gb: float) -> dict:
    p = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, "-c", OPS[op], str(folder), str(gb)],
        capture_output=True, text=True,
    )
    if p.returncode != 0:
        raise SystemExit(f"{op} failed:\n{p.stderr}")
    peak_kb = int(p.stderr.strip().splitlines()[-1])
    secs = float(next(line.split()[1] for line in p.stdout.splitlines() if line.startswith("ELAPSED")))
    return {"op": op, "seconds": secs, "peak_rss_mb": peak_kb / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=1.0, help="uncompressed Arrow size of the rows")
    ap.add_argument("--out", default="/tmp/cumed-store-bench")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    folder = Path(args.out)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    arrow_bytes = generate(folder, args.gb)
    results: dict[str, list[dict]] = {}
    for _ in range(args.repeat):
        for sub in ("store", "plain.parquet"):
            p = folder / sub
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        # Alternate baseline and cumed in the same round so machine noise hits both.
        for op in ("pyarrow_write", "publish", "verify", "scan", "pyarrow_read", "pyarrow_read_table"):
            results.setdefault(op, []).append(run(op, folder, args.gb))
    best = {op: min(rs, key=lambda r: r["seconds"]) for op, rs in results.items()}
    mb = arrow_bytes / 1e6
    on_disk = sum(f.stat().st_size for f in (folder / "store" / "bench" / "v1" / "data").glob("*.parquet")) / 1e6
    print(json.dumps({"arrow_mb": mb, "parquet_mb_on_disk": on_disk, "results": results}, indent=1))
    b = best
    rows = [
        ("store publish (zstd, sha256, fsync, atomic rename)", b["publish"],
         f"{b['publish']['seconds'] / b['pyarrow_write']['seconds']:.2f}x of write_table"),
        ("pyarrow.parquet.write_table (zstd, whole table in RAM)", b["pyarrow_write"], "baseline"),
        ("store verify (sha256 + row counts of every file)", b["verify"], ""),
        ("store scan (DatasetVersion.iter_batches)", b["scan"],
         f"{b['scan']['seconds'] / b['pyarrow_read']['seconds']:.2f}x of ParquetFile.iter_batches"),
        ("pyarrow ParquetFile.iter_batches", b["pyarrow_read"], "baseline"),
        ("pyarrow.parquet.read_table", b["pyarrow_read_table"], ""),
    ]
    lines = [
        f"{mb:.0f} MB of Arrow document rows ({on_disk:.0f} MB as zstd Parquet), best of {args.repeat}; "
        "each op timed inside its own process; MB/s over the Arrow size",
        "",
        "| operation | seconds | MB/s | peak RSS MB | vs baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, r, vs in rows:
        lines.append(f"| {label} | {r['seconds']:.2f} | {mb / r['seconds']:.0f} | {r['peak_rss_mb']:.0f} | {vs} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
