"""Pair building and splitting for 100,000 prompts x 4 responses: time and peak memory.

Run: .venv/bin/python benchmarks/pairs_bench.py [N] > BENCHMARKS.md
Single process (one core). Prompts are synthetic but distinct Chinese questions; the split
clustering (find_duplicates on prompts) is timed with and without.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyarrow as pa  # noqa: E402

from annotation.ranking.importers import RANKINGS_SCHEMA  # noqa: E402
from annotation.ranking.pairs import build_pairs  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
SYM = ["尿频", "尿急", "腰痛", "血尿", "排尿困难", "阴囊肿胀", "夜尿增多", "小腹坠胀"]


def table(n):
    rows = []
    for i in range(n):
        ids = [f"r{(i * 4 + j) % 16777216:06x}" for j in range(4)]
        rows.append({"prompt_id": f"p{i:07d}",
                     "prompt": f"患者{i % 90 + 10}岁，{SYM[i % 8]}{i % 13 + 1}天，伴{SYM[(i // 8) % 8]}，编号{i * 2654435761 % 10**9}，请问怎么办？",
                     "responses": [{"response_id": r, "text": f"回答{j}：建议到泌尿外科就诊，完善尿常规和超声检查。{i}", "model": f"m{j}"} for j, r in enumerate(ids)],
                     "ranking": [[r] for r in ids], "annotator": "a", "batch": "b", "scores": "", "method": "annotation",
                     "seed": i, "order": ids, "source": "bench", "department": ""})
    return pa.Table.from_pylist(rows, schema=RANKINGS_SCHEMA)


def run(label, fn):
    """Wall and CPU time without tracing; then peak traced allocations in a second, traced call."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return label, dt, cpu, peak, out


t0 = time.perf_counter()
t = table(N)
gen = time.perf_counter() - t0
results = [
    run("adjacent pairs, splits without clustering", lambda: build_pairs(t, cluster_threshold=None)),
    run("all pairs, splits without clustering", lambda: build_pairs(t, mode="all", cluster_threshold=None)),
    run("adjacent pairs, near-duplicate prompt clusters (0.6)", lambda: build_pairs(t, cluster_threshold=0.6)),
]
print(f"# pairs_bench: {N:,} prompts x 4 responses\n")
print(f"Python {platform.python_version()}, {platform.machine()}, one process; rankings table built in {gen:.1f} s "
      f"(not timed below). Times from an untraced call (the machine was shared: CPU time is the fairer number); peak memory: Python + Arrow-via-Python allocations traced by tracemalloc in a second call; process max RSS "
      f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB at the end.\n")
print("| run | pairs | wall (s) | CPU (s) | peak traced memory (MiB) | splits (prompts) |")
print("|---|---|---|---|---|---|")
for label, dt, cpu, peak, (prefs, stats) in results:
    splits = ", ".join(f"{k} {v['prompts']:,}" for k, v in stats["splits"].items())
    print(f"| {label} | {prefs.num_rows:,} | {dt:.1f} | {cpu:.1f} | {peak / 2**20:.0f} | {splits} |")
