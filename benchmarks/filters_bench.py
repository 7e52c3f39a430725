"""Hand-run benchmark: cumed's Chinese filters vs stock datatrove Gopher filters on the real corpus.

    taskset -c 0 .venv/bin/python benchmarks/filters_bench.py [--raw ../shared/data/raw] [--out BENCHMARKS.md]

One process, one core (pin it with ``taskset``), peak RSS well under 1 GB. The corpus is
``filters_corpus.load_corpus``: every enabled source of ``datasets/cumed-pretrain.yaml`` through
the project readers, plus the dialogue / evaluation / synthetic sources the recipe leaves out.
Measured in the same run:

- ``Normalize`` on the raw text and ``PIIRedactor`` on the normalised text (as the pipeline runs
  them); the filters then see the redacted text;
- each cumed filter on its own (so it pays for the shared per-document features itself), then
  all of them chained in recipe order, each document stopping at the first filter that removes it;
- datatrove ``GopherRepetitionFilter`` + ``GopherQualityFilter`` with
  ``language=Languages.mandarin_chinese`` on every ``--gopher-every``-th document (they run at
  well under 1 MB/s), with the cumed chain on the same subset for comparison.

MB/s = UTF-8 bytes of document text / seconds. Both CPU seconds of this process
(``time.process_time``: what the step costs, little affected by other load) and wall seconds are
reported. Decisions are not checked here: ``benchmarks/filters_decisions.py`` does that.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import resource
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from filters_corpus import RAW, load_corpus  # noqa: E402


def _mb(texts) -> float:
    return sum(len(t.encode("utf-8")) for t in texts) / 1e6


class Clock:
    def __enter__(self):
        self.c0, self.w0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.cpu = time.process_time() - self.c0
        self.wall = time.perf_counter() - self.w0


def _log(msg: str) -> None:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"[{time.strftime('%H:%M:%S')}] {msg} (peak RSS {rss:,.0f} MB)", file=sys.stderr, flush=True)


def run_filter(f, docs):
    """``f.filter`` over (source, text): (Clock, kept per source, removal reasons)."""
    from datatrove.data import Document

    _log(f"{type(f).__name__} on {len(docs):,} documents")

    ds = [Document(text=t, id=str(i), metadata={"source": s}) for i, (s, t) in enumerate(docs)]
    kept: Counter = Counter()
    reasons: Counter = Counter()
    with Clock() as clk:
        for d in ds:
            r = f.filter(d)
            if r is True or (isinstance(r, tuple) and r[0]) or r is None:
                kept[d.metadata["source"]] += 1
            else:
                reasons[(r[1] if isinstance(r, tuple) and r[1] else "removed").split(":")[0]] += 1
    return clk, kept, reasons


def run_chain(filters, docs):
    from datatrove.data import Document

    _log(f"chain on {len(docs):,} documents")
    chain = list(filters.values())
    ds = [Document(text=t, id=str(i), metadata={"source": s}) for i, (s, t) in enumerate(docs)]
    kept: Counter = Counter()
    reasons: Counter = Counter()
    with Clock() as clk:
        for d in ds:
            for f in chain:
                r = f.filter(d)
                if r is not True:
                    reasons[r[1].split(":")[0] if isinstance(r, tuple) else f.name] += 1
                    break
            else:
                kept[d.metadata["source"]] += 1
    return clk, kept, reasons


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", type=Path, default=RAW)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".md"))
    ap.add_argument("--gopher-every", type=int, default=20, help="run Gopher on every k-th document (0: skip)")
    args = ap.parse_args()

    from curation.steps.filters import build_filters
    from curation.steps.normalize import Normalize
    from curation.steps.pii import PIIRedactor

    raw_docs = load_corpus(args.raw)
    norm, pii = Normalize(), PIIRedactor()
    with Clock() as c_norm:
        normalized = [norm.transform(t) for _, t in raw_docs]
    with Clock() as c_pii:
        redacted = [pii.transform(t) for t in normalized]
    # counted here: the steps' "changed" stat is updated by run(), not transform(). (And never
    # `"changed" in step.stats`: datatrove's Stats has __getitem__ but no __contains__, so `in`
    # iterates it with integer keys into a defaultdict that never ends; that is what got the
    # previous version of this benchmark killed with rc 137 at 20+ GB.)
    norm_changed = sum(a != b for (_, a), b in zip(raw_docs, normalized))
    pii_changed = sum(a != b for a, b in zip(normalized, redacted))
    docs = [(s, t) for (s, _), t in zip(raw_docs, redacted)]
    raw_mb, norm_mb, mb = _mb(t for _, t in raw_docs), _mb(normalized), _mb(redacted)
    del normalized
    per_source = Counter(s for s, _ in docs)
    mb_source: dict = defaultdict(float)
    for s, t in docs:
        mb_source[s] += len(t.encode("utf-8")) / 1e6

    filters = build_filters({})  # every registered filter with its defaults, recipe order
    rows = []
    kept_by = {}
    for name, f in filters.items():
        clk, kept, reasons = run_filter(f, docs)
        rows.append((f"cumed `{name}` ({type(f).__name__})", clk, sum(kept.values()), len(docs), reasons))
        kept_by[name] = kept
    clk, kept_all, reasons_all = run_chain(filters, docs)
    chain_row = ("**cumed: all 9 filters chained**", clk, sum(kept_all.values()), len(docs), reasons_all)

    gopher_rows = []
    if args.gopher_every:
        from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
        from datatrove.utils.typeshelper import Languages

        sub = docs[:: args.gopher_every]
        sub_mb = _mb(t for _, t in sub)
        for cls in (GopherRepetitionFilter, GopherQualityFilter):
            clk, kept, reasons = run_filter(cls(language=Languages.mandarin_chinese), sub)
            gopher_rows.append((f"datatrove {cls.__name__} (cmn)", clk, sum(kept.values()), len(sub), reasons, sub_mb))
        clk, kept, reasons = run_chain(filters, sub)
        gopher_rows.append(("cumed: all 9 filters chained, same subset", clk, sum(kept.values()), len(sub), reasons, sub_mb))

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = io.StringIO()
    w = out.write
    w("# Filter benchmark on the real corpus\n\n")
    w(f"{len(docs):,} documents, {raw_mb:.1f} MB of raw UTF-8 text ({mb:.1f} MB after normalisation and redaction): the "
      f"{sum(n for s, n in per_source.items() if s in RECIPE_SOURCES):,} documents of the enabled `cumed-pretrain` sources "
      "(project readers, read errors left out) + the dialogue, evaluation and synthetic sources the recipe does not use "
      "(`benchmarks/filters_corpus.py`).\n\n")
    w(f"Machine: {os.cpu_count()} cores `{platform.machine()}`, Python {sys.version.split()[0]}; one process "
      f"pinned to one core; peak RSS {rss:,.0f} MB. Run: `taskset -c 0 .venv/bin/python benchmarks/filters_bench.py`. "
      "MB/s columns: UTF-8 MB of input text / CPU seconds of the process, and / wall seconds.\n\n")
    w("| step | MB/s (CPU) | MB/s (wall) | docs kept | top removal reasons |\n|---|---:|---:|---:|---|\n")
    w(f"| cumed `Normalize` (html, unicode, t2s, whitespace), on raw text | {raw_mb / c_norm.cpu:.1f} | {raw_mb / c_norm.wall:.1f} | "
      f"changed {norm_changed:,} | "
      + ", ".join(f"{k} {v.total:,}" for k, v in sorted(norm.stats.stats.items()) if k.startswith("changed_")) + " |\n")
    w(f"| cumed `PIIRedactor` | {norm_mb / c_pii.cpu:.1f} | {norm_mb / c_pii.wall:.1f} | "
      f"changed {pii_changed:,} | "
      + ", ".join(f"{k} {v.total:,}" for k, v in sorted(pii.stats.stats.items()) if k.startswith("pii_")) + " |\n")
    for label, clk, kept, n, reasons in rows + [chain_row]:
        top = ", ".join(f"{k} {v:,}" for k, v in reasons.most_common(4))
        w(f"| {label} | {mb / clk.cpu:.1f} | {mb / clk.wall:.1f} | {kept:,} / {n:,} | {top} |\n")
    if gopher_rows:
        w(f"\nStock datatrove Gopher filters on every {args.gopher_every}th document ({gopher_rows[0][3]:,} documents, "
          f"{gopher_rows[0][5]:.1f} MB; the full corpus would take minutes per filter):\n\n")
        w("| step | MB/s (CPU) | MB/s (wall) | docs kept | top removal reasons |\n|---|---:|---:|---:|---|\n")
        for label, clk, kept, n, reasons, smb in gopher_rows:
            top = ", ".join(f"{k} {v:,}" for k, v in reasons.most_common(4))
            w(f"| {label} | {smb / clk.cpu:.2f} | {smb / clk.wall:.2f} | {kept:,} / {n:,} | {top} |\n")

    w("\n## Kept % per source (cumed filters, defaults; each filter alone, then chained)\n\n")
    names = list(filters)
    w("| source | docs | MB | " + " | ".join(names) + " | all chained |\n")
    w("|---|---:|---:|" + "---:|" * (len(names) + 1) + "\n")
    for s in per_source:
        n = per_source[s]
        cells = " | ".join(f"{100 * kept_by[k][s] / n:.1f}" for k in names)
        w(f"| {s} | {n:,} | {mb_source[s]:.1f} | {cells} | {100 * kept_all[s] / n:.1f} |\n")
    text = out.getvalue()
    print(text)
    args.out.write_text(text, encoding="utf-8")


RECIPE_SOURCES = {
    "health39_disease_cards", "toyhom_csv", "toyhom_im_blocks", "medicalgpt_rag_corpus", "cmekg_triples",
    "chinaxiv_medical", "sjtu_book_data",
}

if __name__ == "__main__":
    main()
