"""Decision-identity check: speed work on the filters must not change a single decision.

    .venv/bin/python benchmarks/filters_decisions.py record /tmp/cumed-decisions.pkl   # before
    .venv/bin/python benchmarks/filters_decisions.py check  /tmp/cumed-decisions.pkl   # after

Records, for every document of the real corpus (``filters_corpus.load_corpus``: the pretraining
recipe's sources through the project readers + the ad-hoc dialogue/eval sources):

- the SHA-1 of the text after ``Normalize`` and after ``PIIRedactor``, which normalisation
  sub-steps changed it and the PII counts per type;
- for every filter of ``build_filters({})`` run on the redacted text *on its own* (not chained),
  ``True`` or the exact reason string (which carries the measured ratio, so a changed number
  shows even where the keep/remove decision does not);
- the output of ``BoilerplateLineCleaner`` (SHA-1).

Both modes also run every filter's ``filter_batch`` (what a build calls) on chunks of the same
texts and fail where it says anything else than ``filter`` for a document.

``check`` recomputes everything with the current code (no cache) and exits 1 on any difference,
printing the first ones.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from filters_corpus import RAW, load_corpus  # noqa: E402


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def compute(raw: Path = RAW) -> dict:
    from datatrove.data import Document

    from curation.steps.base import CHUNK
    from curation.steps.filters import BoilerplateLineCleaner, build_filters
    from curation.steps.normalize import Normalize
    from curation.steps.pii import PIIRedactor

    docs = load_corpus(raw)
    norm, pii = Normalize(), PIIRedactor()
    rows = []
    redacted = []
    for src, text in docs:
        before = {k: v.total for k, v in norm.stats.stats.items()}
        n = norm.transform(text)
        after = {k: v.total for k, v in norm.stats.stats.items()}
        changed = tuple(sorted(k for k in after if after[k] != before.get(k, 0)))
        pbefore = {k: v.total for k, v in pii.stats.stats.items()}
        p = pii.transform(n)
        pafter = {k: v.total for k, v in pii.stats.stats.items()}
        pcounts = tuple(sorted((k, pafter[k] - pbefore.get(k, 0)) for k in pafter if pafter[k] != pbefore.get(k, 0)))
        rows.append({"source": src, "raw": _sha(text), "normalized": _sha(n), "norm_changed": changed,
                     "redacted": _sha(p), "pii": pcounts})
        redacted.append(p)
    filters = build_filters({})
    batch_mismatch: Counter = Counter()
    for name, f in filters.items():
        for row, text in zip(rows, redacted):
            r = f.filter(Document(text=text, id="x"))
            row[name] = True if r is True else (r if isinstance(r, tuple) else (bool(r), None))
        # a build calls ``filter_batch`` on chunks: it must say what ``filter`` says, document by document
        for start in range(0, len(rows), CHUNK):
            docs = [Document(text=t, id="x") for t in redacted[start:start + CHUNK]]
            for row, r in zip(rows[start:start + CHUNK], f.filter_batch(docs)):
                r = True if r is True else (r if isinstance(r, tuple) else (bool(r), None))
                batch_mismatch[name] += r != row[name]
    cleaner = BoilerplateLineCleaner()
    for row, text in zip(rows, redacted):
        row["boilerplate_lines"] = _sha(cleaner.transform(text))
    return {"filters": list(filters), "rows": rows, "batch_mismatch": +batch_mismatch}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["record", "check"])
    ap.add_argument("path", type=Path)
    ap.add_argument("--raw", type=Path, default=RAW)
    args = ap.parse_args()
    data = compute(args.raw)
    rows = data["rows"]
    if args.mode == "record":
        with open(args.path, "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
        removed = Counter(name for r in rows for name in data["filters"] if r[name] is not True)
        print(f"recorded {len(rows):,} documents x {len(data['filters'])} filters -> {args.path}; removed per filter: {dict(removed)}")
        return 0
    if data["batch_mismatch"]:
        print(f"FAIL: filter_batch differs from filter on {dict(data['batch_mismatch'])} documents")
        return 1
    with open(args.path, "rb") as f:
        ref = pickle.load(f)
    if len(ref["rows"]) != len(rows):
        print(f"FAIL: {len(rows)} documents now, {len(ref['rows'])} recorded")
        return 1
    diffs: Counter = Counter()
    shown = 0
    for i, (a, b) in enumerate(zip(ref["rows"], rows)):
        for k in a:
            if a[k] != b.get(k):
                diffs[k] += 1
                if shown < 20:
                    print(f"doc {i} ({a['source']}) {k}: recorded {a[k]!r} now {b.get(k)!r}")
                    shown += 1
    checked = len(rows) * len(ref["rows"][0])
    if diffs:
        print(f"FAIL: differences per field: {dict(diffs)}")
        return 1
    print(f"OK: {len(rows):,} documents, {len(ref['filters'])} filters + normalize/pii/boilerplate_lines outputs: "
          f"all {checked:,} recorded values identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
