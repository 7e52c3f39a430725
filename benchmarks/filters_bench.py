"""Hand-run benchmark: cumed's Chinese filters vs stock datatrove Gopher filters on the real corpus.

    .venv/bin/python benchmarks/filters_bench.py [--raw ../shared/data/raw] [--out benchmarks/filters_bench.md]

Reads every text source under the raw folder with small ad-hoc code (not ``curation.readers``,
so the numbers do not depend on reader changes), runs each step on one core, and writes a
Markdown table of MB/s (UTF-8 bytes of document text / wall seconds) and kept % per source.
Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RAW = Path(os.environ.get("CUMED_RAW", Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"))


def _json(path: Path):
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:  # JSON Lines
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_corpus(raw: Path = RAW) -> list[tuple[str, str]]:
    """(source, text) for every text record of the raw sources; simple, not the project readers."""
    docs: list[tuple[str, str]] = []
    add = docs.append
    toy = raw / "Toyhom_Chinese_medical_dialogue"
    with open(toy / "样例_内科5000-6000.csv", encoding="gb18030", newline="") as f:
        for row in csv.DictReader(f):
            add(("toyhom_csv", f"{row['title']}\n{row['ask']}\n{row['answer']}"))
    blocks = (toy / "Data_数据/IM_内科/内科.txt").read_text(encoding="gb18030").split("\n\n")
    for b in blocks:
        if b.strip():
            add(("toyhom_txt", b.strip()))
    h39 = raw / "QASystemOnMedicalGraph_39health/data/disease.csv"
    with open(h39, encoding="gb18030", newline="") as f:
        for row in csv.DictReader(f):
            add(("39health", "\n".join(f"{k}：{v}" for k, v in row.items() if k and v)))
    for item in _json(raw / "Zhongjing_CMtMedQA/data/huatuo26M_test.json"):
        add(("huatuo26m", "\n".join(item["instruction"] + [item.get("input", "")] + item["output"]).strip()))
    for item in _json(raw / "Huatuo_Llama_Med_Chinese/data/llama_data.json"):
        add(("huatuo_llama", f"{item['instruction']}\n{item['input']}\n{item['output']}".replace("\n\n", "\n")))
    for item in _json(raw / "Huatuo_Llama_Med_Chinese/data-literature/liver_cancer.json"):
        add(("liver_cancer", f"{item['instruction']}\n{item.get('output', '')}"))
    for item in _json(raw / "MedicalGPT_shibing624/data/rag/medical_corpus.txt"):
        add(("medicalgpt_rag", f"{item['问']}\n{item['答']}"))
    for item in _json(raw / "MedicalGPT_shibing624/data/sft/medical_sft_1K_format.jsonl"):
        add(("medicalgpt_sft", "\n".join(t["value"] for t in item["conversations"])))
    for item in _json(raw / "MedicalGPT_zh_SJTU/data/book_data.json"):
        add(("sjtu_book", item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)))
    for item in _json(raw / "Zhongjing_CMtMedQA/data/CMtMedQA_test.json"):
        if "history" in item:
            turns = [x for qa in item["history"] for x in qa] + [item["instruction"], item["output"]]
        else:
            turns = [item.get("instruct", ""), item.get("output", "")]
        add(("cmtmedqa", "\n".join(turns)))
    with open(raw / "BianQue_example/data/cMedialog_example.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            add(("bianque", f"{row['input']}\n{row['target']}"))
    for item in _json(raw / "DISC_MedLLM_eval/eval/samples/CMB-cases.json"):
        add(("cmb_clin", item["case"]))
    for p in sorted(glob.glob(str(raw / "ChinaXiv_medical/*/*.md"))):
        add(("chinaxiv", Path(p).read_text(encoding="utf-8")))
    return docs


def _mb(docs) -> float:
    return sum(len(t.encode("utf-8")) for _, t in docs) / 1e6


def time_filter(f, docs):
    """Run ``f.filter`` over (source, text); return seconds and kept counts per source."""
    from datatrove.data import Document

    ds = [Document(text=t, id=str(i), metadata={"source": s}) for i, (s, t) in enumerate(docs)]
    kept: Counter = Counter()
    reasons: Counter = Counter()
    t0 = time.perf_counter()
    for d in ds:
        r = f.filter(d)
        ok = r if isinstance(r, bool) else r[0]
        if ok:
            kept[d.metadata["source"]] += 1
        else:
            reasons[(r[1] if isinstance(r, tuple) else "removed").split(":")[0]] += 1
    return time.perf_counter() - t0, kept, reasons


def time_transform(t, docs):
    t0 = time.perf_counter()
    changed = 0
    for _, text in docs:
        changed += t.transform(text) != text
    return time.perf_counter() - t0, changed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", type=Path, default=RAW)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".md"))
    ap.add_argument("--skip-gopher", action="store_true")
    args = ap.parse_args()

    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
    from datatrove.utils.typeshelper import Languages

    from curation.steps.filters import FILTERS, build_filters
    from curation.steps.normalize import Normalize
    from curation.steps.pii import PIIRedactor

    raw_docs = load_corpus(args.raw)
    # normalise and redact first, as the pipeline does; the filters then see normalised text
    norm, pii = Normalize(), PIIRedactor()
    t0 = time.perf_counter()
    docs = [(s, norm.transform(t)) for s, t in raw_docs]
    norm_sec = time.perf_counter() - t0
    t0 = time.perf_counter()
    docs = [(s, pii.transform(t)) for s, t in docs]
    pii_sec = time.perf_counter() - t0
    raw_mb = _mb(raw_docs)
    mb = _mb(docs)
    per_source = Counter(s for s, _ in docs)
    mb_source = defaultdict(float)
    for s, t in docs:
        mb_source[s] += len(t.encode("utf-8")) / 1e6
    out = io.StringIO()
    w = out.write
    w("# Filter benchmark on the real corpus\n\n")
    w(f"{len(docs):,} documents, {mb:.1f} MB of UTF-8 text from `{args.raw.name}/` (all text sources, read ad hoc); "
      f"one core, `{os.uname().machine}`, Python {sys.version.split()[0]}. Run: `python benchmarks/filters_bench.py`.\n\n")

    rows = []
    if not args.skip_gopher:
        for cls in (GopherRepetitionFilter, GopherQualityFilter):
            f = cls(language=Languages.mandarin_chinese)
            sec, kept, reasons = time_filter(f, docs)
            rows.append((f"datatrove {cls.__name__} (cmn)", sec, sum(kept.values()), reasons))
    filters = build_filters({})  # every registered filter with its defaults
    all_kept = None
    total_sec = 0.0
    kept_by = {}
    for name, f in filters.items():
        sec, kept, reasons = time_filter(f, docs)
        total_sec += sec
        rows.append((f"cumed {type(f).__name__} (`{name}`)", sec, sum(kept.values()), reasons))
        kept_by[name] = kept
    # all together, chained (each document stops at the first filter that removes it)
    from datatrove.data import Document

    chain = list(filters.values())
    ds = [Document(text=t, id=str(i), metadata={"source": s}) for i, (s, t) in enumerate(docs)]
    kept_all: Counter = Counter()
    reasons_all: Counter = Counter()
    t0 = time.perf_counter()
    for d in ds:
        for f in chain:
            r = f.filter(d)
            if r is not True:
                reasons_all[r[1].split(":")[0] if isinstance(r, tuple) else f.name] += 1
                break
        else:
            kept_all[d.metadata["source"]] += 1
    chain_sec = time.perf_counter() - t0
    rows.append(("cumed: all filters chained", chain_sec, sum(kept_all.values()), reasons_all))

    w(f"Filters run on the normalised, redacted text ({mb:.1f} MB). Chained = each document stops at the first filter that removes it; "
      f"its MB/s is the figure to compare with the 10 MB/s/core target. Sum of per-filter times: {total_sec:.1f} s ({mb / total_sec:.1f} MB/s).\n\n")
    w("| step | MB/s | docs kept | top removal reasons |\n|---|---:|---:|---|\n")
    for label, sec, kept, reasons in rows:
        top = ", ".join(f"{k} {v}" for k, v in reasons.most_common(4))
        w(f"| {label} | {mb / sec:.2f} | {kept:,} / {len(docs):,} | {top} |\n")
    nst = {k: v.total for k, v in norm.stats.stats.items()}
    w(f"| cumed Normalize (html, unicode, t2s, whitespace), on raw text | {raw_mb / norm_sec:.2f} | changed {nst.get('changed', 0):,} docs "
      f"(html {nst.get('changed_html', 0):,}, unicode {nst.get('changed_unicode', 0):,}, t2s {nst.get('changed_t2s', 0):,}, "
      f"whitespace {nst.get('changed_whitespace', 0):,}) | |\n")
    pst = {k: v.total for k, v in pii.stats.stats.items() if k.startswith("pii_")}
    w(f"| cumed PIIRedactor | {mb / pii_sec:.2f} | changed {pii.stats['changed'].total if 'changed' in pii.stats else 0:,} docs | "
      + ", ".join(f"{k} {v}" for k, v in sorted(pst.items())) + " |\n")

    w("\n## Kept % per source (cumed filters, defaults)\n\n")
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


if __name__ == "__main__":
    main()
