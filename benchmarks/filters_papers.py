"""Issue 11: what the default filters remove from genuine text, before and after the fix.

    .venv/bin/python benchmarks/filters_papers.py [--before f887545] [--raw ../shared/data/raw]

Documents (all normalised and PII-redacted as the pipeline does before its filters):

- every ChinaXiv paper (``chinaxiv_medical`` of ``datasets/cumed-pretrain.yaml``, read with the
  recipe's markdown reader through ``curation.readers.make_reader``) and the other textbook source
  (``sjtu_book_data``);
- the 39health disease cards rendered as plain lines (every non-empty column value of a row on
  its own line, in column order: ``骨囊肿\\n...\\n好发于4——20岁，多见于5——15岁儿童\\n...``) and as the
  recipe's ``disease_cards`` reader renders them (``label：value`` lines);
- every other document of the benchmark corpus (``filters_corpus.prepared``: the recipe's other
  sources plus the dialogue/evaluation sets), for a per-source view.

Both sides run ``build_filters(<the recipe's steps.filters>)`` on the same texts, in a subprocess
each: *before* imports ``curation`` from ``git archive <--before> curation`` (default: f887545, the
commit this change was made on), *after* from the working tree. Printed: papers removed per
filter (first removing filter in recipe order, and each filter on its own), the papers still
removed with titles and reasons, mojibake removals on the cards and consultations, and kept
documents per source. ``--json`` writes the raw results.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
RAW = Path(os.environ.get("CUMED_RAW", ROOT.parent / "shared" / "data" / "raw"))
RECIPE = ROOT / "datasets" / "cumed-pretrain.yaml"
BEFORE = "f887545"
CARDS = "QASystemOnMedicalGraph_39health/data/disease.csv"
TEXTBOOK = ("chinaxiv_medical", "sjtu_book_data")


# ---------------------------------------------------------------- documents
def _recipe():
    import yaml

    return yaml.safe_load(RECIPE.read_text(encoding="utf-8"))


def read_source(name: str, raw: Path) -> list[dict]:
    """One recipe source through the recipe's reader; read errors left out (the build drops them)."""
    from curation.readers import make_reader

    src = next(s for s in _recipe()["sources"] if s["name"] == name)
    reader = make_reader(src, str(raw.resolve()))
    out = []
    for doc in reader.run():
        if doc.metadata.get("read_error"):
            continue
        m = doc.metadata
        out.append({"set": name, "id": doc.id, "text": doc.text, "file": m.get("file", ""), "title": m.get("title", "")})
    return out


def cards_plain(raw: Path) -> list[dict]:
    with open(raw / CARDS, encoding="gb18030", newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for i, r in enumerate(rows):
        text = "\n".join(v.strip() for k, v in r.items() if k and v and v.strip())
        out.append({"set": "health39_cards_plain_lines", "id": f"card-{i}", "text": text, "file": CARDS, "title": r["name"]})
    return out


def load(raw: Path) -> list[dict]:
    import curation.readers  # noqa: F401  (datatrove sets up its logger on import: reset it after)
    from filters_corpus import prepared
    from loguru import logger

    logger.remove()  # datatrove's readers log every file at INFO
    logger.add(sys.stderr, level="WARNING")

    from curation.steps.normalize import Normalize
    from curation.steps.pii import PIIRedactor

    norm, pii = Normalize(), PIIRedactor()
    docs = [d for name in TEXTBOOK for d in read_source(name, raw)] + cards_plain(raw)
    for d in docs:
        d["text"] = pii.transform(norm.transform(d["text"]))
    corpus = prepared(raw)  # cached: (source, raw text) + redacted text of every other document
    for k, ((src, _), text) in enumerate(zip(corpus["raw"], corpus["redacted"])):
        if src not in TEXTBOOK:
            docs.append({"set": src, "id": f"{src}-{k}", "text": text, "file": "", "title": ""})
    return docs


# ---------------------------------------------------------------- one side (subprocess)
def run_side(docs_path: str, out_path: str) -> None:
    """Runs inside the subprocess whose sys.path starts with the tree to measure."""
    from datatrove.data import Document

    import curation.steps.filters as F

    with open(docs_path, "rb") as f:
        docs = pickle.load(f)
    filters = F.build_filters(_recipe()["steps"]["filters"])
    alone = [{} for _ in docs]
    cpu = {}
    for name, flt in filters.items():  # each filter on its own over every document, timed
        t0 = time.process_time()
        for res, d in zip(alone, docs):
            r = flt.filter(Document(text=d["text"], id=d["id"]))
            res[name] = None if r is True else (r[1] if isinstance(r, tuple) else name)
        cpu[name] = time.process_time() - t0
    chain = [next(((n, r) for n, r in res.items() if r is not None), None) for res in alone]
    # the chain on a fresh set of filter objects, each document stopping at its first removal
    filters = F.build_filters(_recipe()["steps"]["filters"])
    t0 = time.process_time()
    for d in docs:
        doc = Document(text=d["text"], id=d["id"])
        for flt in filters.values():
            if flt.filter(doc) is not True:
                break
    cpu["chain"] = time.process_time() - t0
    with open(out_path, "wb") as f:
        pickle.dump({"alone": alone, "chain": chain, "cpu_s": cpu, "code": F.__file__}, f)


def side(tree: Path, docs_path: str, raw: Path) -> dict:
    fd, out = tempfile.mkstemp(suffix=".pkl")
    os.close(fd)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), str(ROOT)]), CUMED_RAW=str(raw.resolve()))
    subprocess.run([sys.executable, __file__, "--side-run", docs_path, out], check=True, env=env, cwd=str(tree))
    with open(out, "rb") as f:
        res = pickle.load(f)
    os.unlink(out)
    assert Path(res["code"]).resolve().is_relative_to(tree.resolve()), res["code"]
    return res


# ---------------------------------------------------------------- report
def report(docs: list[dict], before: dict, after: dict, rev: str) -> None:
    names = list(after["alone"][0])
    papers = [i for i, d in enumerate(docs) if d["set"] == "chinaxiv_medical"]
    clinical = [i for i in papers if "/clinical_medicine/" in docs[i]["file"]]

    def chain_counts(res, idx):
        return Counter(res["chain"][i][0] for i in idx if res["chain"][i])

    def alone_counts(res, idx):
        return Counter(n for i in idx for n, r in res["alone"][i].items() if r)

    print(f"## ChinaXiv papers: {len(papers)} ({len(clinical)} in clinical_medicine/, {len(papers) - len(clinical)} in urology/)")
    print(f"before = filters at {rev}, after = working tree; same texts, same recipe config\n")
    print("| filter | removed first, before | after | on its own, before | after |")
    print("|---|---:|---:|---:|---:|")
    cb, ca, ab, aa = chain_counts(before, papers), chain_counts(after, papers), alone_counts(before, papers), alone_counts(after, papers)
    for n in names:
        print(f"| {n} | {cb[n]} | {ca[n]} | {ab[n]} | {aa[n]} |")
    for label, idx in (("all papers", papers), ("clinical_medicine/", clinical)):
        kb = sum(before["chain"][i] is None for i in idx)
        ka = sum(after["chain"][i] is None for i in idx)
        print(f"| **kept, {label}** | {kb}/{len(idx)} ({100 * kb / len(idx):.1f} %) | {ka}/{len(idx)} ({100 * ka / len(idx):.1f} %) | | |")

    print("\n### Papers still removed after the change\n")
    print("| paper | folder | filter: reason | removed before by | title |")
    print("|---|---|---|---|---|")
    for i in papers:
        if after["chain"][i]:
            d = docs[i]
            n, r = after["chain"][i]
            b = before["chain"][i]
            folder = d["file"].split("/")[-2]
            print(f"| {d['file'].rsplit('/', 1)[-1]} | {folder} | {r} | {b[1] if b else 'kept'} | {d['title'][:60]} |")
    newly = [i for i in papers if after["chain"][i] and not before["chain"][i]]
    print(f"\nremoved after but kept before: {len(newly)}; kept after but removed before: "
          f"{sum(1 for i in papers if before['chain'][i] and not after['chain'][i])}")

    print("\n## Mojibake filter on its own: documents removed\n")
    print("| documents | n | before | after |")
    print("|---|---:|---:|---:|")
    for s in ("health39_cards_plain_lines", "health39_disease_cards", "toyhom_csv", "toyhom_im_blocks",
              "chinaxiv_medical", "cmekg_triples", "huatuo26m", "medicalgpt_sft"):
        idx = [i for i, d in enumerate(docs) if d["set"] == s]
        if idx:
            mb = sum(before["alone"][i].get("mojibake") is not None for i in idx)
            ma = sum(after["alone"][i].get("mojibake") is not None for i in idx)
            print(f"| {s} | {len(idx)} | {mb} | {ma} |")

    print("\n## Every set: kept by the whole chain, and removals by the changed filters on their own\n")
    changed = [n for n in ("mojibake", "cjk_ratio", "symbol_ratio", "char_repetition") if n in names]
    head = " | ".join(f"{n} before | after" for n in changed)
    print(f"| set | n | kept before | kept after | {head} |")
    print("|---|---:|---:|---:|" + "---:|---:|" * len(changed))
    for s in dict.fromkeys(d["set"] for d in docs):
        idx = [i for i, d in enumerate(docs) if d["set"] == s]
        kb = sum(before["chain"][i] is None for i in idx)
        ka = sum(after["chain"][i] is None for i in idx)
        cells = " | ".join(
            f"{sum(before['alone'][i][n] is not None for i in idx)} | {sum(after['alone'][i][n] is not None for i in idx)}"
            for n in changed)
        print(f"| {s} | {len(idx)} | {kb} | {ka} | {cells} |")
    print(f"\n## CPU seconds over all {len(docs)} documents (one process each, same machine, back to back)\n")
    print("| filter | before | after |")
    print("|---|---:|---:|")
    for n in [*names, "chain"]:
        print(f"| {n if n != 'chain' else '**all chained**'} | {before['cpu_s'][n]:.2f} | {after['cpu_s'][n]:.2f} |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", type=Path, default=RAW)
    ap.add_argument("--before", default=BEFORE, help="git revision whose curation/ is 'before'")
    ap.add_argument("--json", type=Path, help="write per-document results here")
    ap.add_argument("--side-run", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.side_run:
        return run_side(*a.side_run)
    sys.path.insert(0, str(ROOT))
    docs = load(a.raw)
    with tempfile.TemporaryDirectory() as tmp:
        docs_path = str(Path(tmp) / "docs.pkl")
        with open(docs_path, "wb") as f:
            pickle.dump(docs, f)
        old = Path(tmp) / "before"
        old.mkdir()
        archive = subprocess.run(["git", "archive", a.before, "curation"], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        before = side(old, docs_path, a.raw)
        after = side(ROOT, docs_path, a.raw)
    report(docs, before, after, a.before)
    if a.json:
        rows = [{"set": d["set"], "id": d["id"], "file": d["file"], "title": d["title"],
                 "before": before["alone"][i], "after": after["alone"][i]} for i, d in enumerate(docs)]
        a.json.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
