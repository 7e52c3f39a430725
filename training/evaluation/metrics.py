"""Reference metrics: character BLEU, character ROUGE-L, answer length, distinct-1/2.

* BLEU: sacrebleu corpus BLEU with its ``zh`` tokenizer (every CJK character is a token; runs of
  Latin letters/digits stay words), one reference per item, score 0..100.
* ROUGE-L: on characters, whitespace removed; LCS-based precision, recall and F1 (beta = 1) per
  item, averaged over items (0..1). The LCS is Hyyrö's bit-parallel algorithm on Python ints
  (O(n*m/word)); ``lcs_dp`` is the textbook dynamic programme the tests check it against.
* length: mean answer length in characters (whitespace removed).
* distinct-n: distinct character n-grams / all character n-grams over all answers of a model.

The paper calls BLEU/ROUGE insufficient for medical dialogue; they are reported beside the judge.
"""

from __future__ import annotations

from statistics import mean


def chars(text: str) -> str:
    return "".join((text or "").split())


def lcs_dp(a: str, b: str) -> int:
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0]
        for j, cb in enumerate(b):
            cur.append(prev[j] + 1 if ca == cb else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def lcs_length(a: str, b: str) -> int:
    """Length of the longest common subsequence (bit-parallel, Hyyrö 2004)."""
    if not a or not b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    masks: dict[str, int] = {}
    for i, ch in enumerate(a):
        masks[ch] = masks.get(ch, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for ch in b:
        u = v & masks.get(ch, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - bin(v).count("1")


def rouge_l(hyp: str, ref: str) -> dict:
    h, r = chars(hyp), chars(ref)
    lcs = lcs_length(h, r)
    p = lcs / len(h) if h else 0.0
    rc = lcs / len(r) if r else 0.0
    f = 2 * p * rc / (p + rc) if p + rc else 0.0
    return {"p": p, "r": rc, "f": f}


def corpus_bleu(hyps: list[str], refs: list[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(hyps), [list(refs)], tokenize="zh").score)


def distinct_n(texts: list[str], n: int) -> float:
    grams, total = set(), 0
    for t in texts:
        c = chars(t)
        for i in range(len(c) - n + 1):
            grams.add(c[i:i + n])
            total += 1
    return len(grams) / total if total else 0.0


def compute_metrics(items, answers: dict[str, str]) -> dict:
    """Metrics of one model's ``answers`` on benchmark ``items`` (``BenchItem``), for all items and the
    urology subset. Items without an answer are counted as ``missing`` and left out; BLEU/ROUGE-L are
    ``None`` where the set has no references."""

    def one(sel) -> dict:
        have = [it for it in sel if it.id in answers]
        hyps = [answers[it.id] for it in have]
        res = {"n": len(have), "missing": len(sel) - len(have),
               "length_mean": mean(len(chars(h)) for h in hyps) if hyps else 0.0,
               "distinct_1": distinct_n(hyps, 1), "distinct_2": distinct_n(hyps, 2),
               "bleu": None, "rouge_l": None, "n_ref": 0}
        withref = [it for it in have if it.reference]
        if withref:
            hy = [answers[it.id] for it in withref]
            rf = [it.reference for it in withref]
            res["n_ref"] = len(withref)
            res["bleu"] = corpus_bleu(hy, rf)
            scores = [rouge_l(h, r) for h, r in zip(hy, rf)]
            res["rouge_l"] = {k: mean(s[k] for s in scores) for k in ("p", "r", "f")}
            res["ref_length_mean"] = mean(len(chars(r)) for r in rf)
        return res

    items = list(items)
    return {"all": one(items), "urology": one([it for it in items if it.urology])}
