"""Print a hand-checkable sample of the dialogues the SFT department selection keeps.

    python benchmarks/sft_department.py [--raw ../shared/data/raw] [--n 50] [--seed 0]

Builds datasets/cumed-sft.yaml into a temporary store and prints, for n random kept dialogues,
source, source department, the methods that selected it and the first user turn. Judge each
line by hand and record the precision in BENCHMARKS.md.
"""

import argparse
import json
import random
import tempfile

from curation.sft.build import build_conversations

p = argparse.ArgumentParser()
p.add_argument("--raw", default="../shared/data/raw")
p.add_argument("--n", type=int, default=50)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
with tempfile.TemporaryDirectory() as store:
    dv, stats = build_conversations("datasets/cumed-sft.yaml", a.raw, store, progress=False)
    print(json.dumps(stats["department"], ensure_ascii=False))
    rows = dv.to_arrow().to_pylist()
    random.Random(a.seed).shuffle(rows)
    for i, r in enumerate(rows[: a.n]):
        m = json.loads(r["metadata"])
        print(i, r["source"], r["department"], m.get("department_methods"), "|", r["messages"][0]["content"][:90].replace("\n", " "))
