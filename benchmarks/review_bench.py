"""Hand-run benchmark of the ``labelstudio`` review backend against a real local Label Studio.

    .venv/bin/python benchmarks/review_bench.py [--n 10000] [--naive 1000] [--annotate api|import]
                                                [--workers 4] [--out benchmarks/out/review_bench.json]

Starts a fresh server (own data dir under /tmp, free port, the project's ``.venv-labelstudio``) and
measures, on the same server in the same run:

- ``push``: ``LabelStudioBackend.push`` of N tasks (bulk ``projects.import_tasks``, 1,000 per request),
  including the project lookup/creation and the listing of already-queued doc_ids;
- ``re-push``: the same N tasks again (idempotent: lists the project's doc_ids, imports nothing);
- ``naive``: one ``tasks.create`` request per task for ``--naive`` tasks (extrapolated to N);
- ``annotate``: N annotations through ``annotations.create`` (one request each, ``--workers`` threads;
  the open-source edition has no bulk create) - or, with ``--annotate import``, N pre-annotated tasks
  imported in bulk (fast, for a quick run);
- ``pull``: ``LabelStudioBackend.pull`` of the N annotated tasks (page by page, 500 and 1,000 per page,
  checkpoint written after every page).

Tasks are synthetic Chinese medical-looking texts of 200-800 characters.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotation.labelstudio.backend import LabelStudioBackend  # noqa: E402
from annotation.labelstudio.server import LabelStudioServer, free_port  # noqa: E402
from annotation.review.config import LABEL_CONFIG, meta_line, result_items  # noqa: E402

DATA_DIR = Path("/tmp/cumed_review_bench")
CHARS = "患者主诉头痛发热咳嗽三天既往史高血压糖尿病查体血压心率呼吸诊断建议治疗口服药物每日两次复查医生门诊住院检查结果正常异常"


def make_tasks(n: int, prefix: str, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = "".join(rng.choice(CHARS) for _ in range(rng.randint(200, 800))) + "。"
        out.append({"data": {"doc_id": f"{prefix}{i:06d}", "text": text, "source": "bench", "category": "medical",
                             "score": round(rng.random(), 3), "meta": meta_line("bench", "medical", 0.5)}})
    return out


def timed(fn, *a, **kw):
    t0 = time.perf_counter()
    r = fn(*a, **kw)
    return r, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--naive", type=int, default=1_000)
    ap.add_argument("--annotate", choices=["api", "import"], default="api")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--out", default="benchmarks/out/review_bench.json")
    args = ap.parse_args()
    n = args.n
    res: dict = {"n": n}

    shutil.rmtree(DATA_DIR, ignore_errors=True)
    srv = LabelStudioServer(DATA_DIR)
    st, res["start_s"] = timed(srv.start, port=free_port(), log=lambda m: print(m, file=sys.stderr))
    print(f"server {st['url']} up in {res['start_s']:.1f} s", file=sys.stderr)
    try:
        b = LabelStudioBackend(token_file=srv.env_file, cache_dir=DATA_DIR / "cache", chunk_size=1000, page_size=500)

        tasks = make_tasks(n, "d")
        r, s = timed(b.push, "bench-1", "bench", tasks, LABEL_CONFIG)
        assert r["pushed"] == n, r
        res["push"] = {"s": s, "tasks_per_s": n / s}
        r, s = timed(b.push, "bench-1", "bench", tasks, LABEL_CONFIG)
        assert r["pushed"] == 0 and r["skipped"] == n, r
        res["repush_noop"] = {"s": s}
        print(f"push {n}: {res['push']['s']:.1f} s; re-push {s:.1f} s", file=sys.stderr)

        # naive: one request per task, into its own project
        naive = make_tasks(args.naive, "n", seed=1) if args.naive else []
        pid = b.client.projects.create(title="cumed bench: naive", label_config=LABEL_CONFIG).id
        t0 = time.perf_counter()
        for t in naive:
            b.client.tasks.create(project=pid, data=t["data"])
        s = time.perf_counter() - t0
        if naive:
            res["naive"] = {"n": args.naive, "s": s, "tasks_per_s": args.naive / s,
                            "extrapolated_s_for_n": s * n / args.naive}
            print(f"naive {args.naive}: {s:.1f} s", file=sys.stderr)

        pulled, s = timed(b.pull, "bench-1", "bench")
        assert len(pulled) == n
        res["pull_unannotated_500"] = {"s": s, "tasks_per_s": n / s}

        # annotations
        if args.annotate == "api":
            ids = [t["id"] for t in pulled]
            rng = random.Random(2)

            def ann(tid):
                d = rng.random() < 0.7
                b.client.annotations.create(id=tid, result=result_items("keep") if d else
                                            result_items("discard", "low_quality", "重复内容"))
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.workers) as ex:
                list(ex.map(ann, ids))
            s = time.perf_counter() - t0
            res["annotate"] = {"mode": f"annotations.create, {args.workers} threads", "n": n, "s": s,
                               "per_s": n / s, "s_each_effective": s / n}
            batch, dataset = "bench-1", "bench"
        else:
            ann_tasks = make_tasks(n, "a", seed=3)
            for t in ann_tasks:
                t["annotations"] = [{"result": result_items("keep")}]
            r, s = timed(b.push, "bench-ann", "bench-ann", ann_tasks, LABEL_CONFIG)
            res["annotate"] = {"mode": "pre-annotated bulk import", "n": n, "s": s, "per_s": n / s}
            batch, dataset = "bench-ann", "bench-ann"
        print(f"annotate: {res['annotate']}", file=sys.stderr)

        for ps in (500, 1000):
            b.page_size = ps
            pulled, s = timed(b.pull, batch, dataset)
            n_ann = sum(len(t["annotations"]) for t in pulled)
            assert len(pulled) == n and n_ann == n, (len(pulled), n_ann)
            res[f"pull_annotated_{ps}"] = {"s": s, "tasks_per_s": n / s, "annotations": n_ann}
            print(f"pull {n} annotated, page {ps}: {s:.1f} s", file=sys.stderr)
        # second pull: nothing changed, same result
        again, s = timed(b.pull, batch, dataset)
        assert sorted(t["id"] for t in again) == sorted(t["id"] for t in pulled)
        res["repull_s"] = s
    finally:
        srv.stop()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1), encoding="utf-8")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
