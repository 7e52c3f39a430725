"""Planted near-duplicates over real documents: the ground truth for dedup tests and benchmarks.

The alterations of issue #17 ("Recall at the default threshold"), ``KINDS``, each imitating a
duplicate seen in scraped medical text:

- ``char_edit_3pct`` exactly 3 % of the text's letters/digits/CJK characters edited (one third
                     each: substituted, a character inserted before it, deleted); substitutes and
                     insertions are common CJK characters (OCR / re-typing);
- ``sentence_drop``  any one sentence dropped, texts of 2 sentences and more (short ones included);
- ``sentence_swap``  two adjacent sentences swapped (re-ordered answer), texts of 2 sentences and more;
- ``disclaimer``     a site disclaimer appended (reposts add one);
- ``traditional``    the whole text converted to Traditional script (OpenCC s2t): HK/TW mirrors.

The milder set that came first, ``MILD_KINDS`` (kept, cheap: ``plant(..., kinds=MILD_KINDS)``; no
test or benchmark uses it now): ``char_noise`` (<= 2 % x U(0.5, 1) of the characters edited),
``sentence_swap_3`` (texts of >= 3 sentences), ``sentence_drop_small`` (a sentence of <= 10 % of the
text, texts of >= 4 sentences), ``boilerplate`` (= ``disclaimer``), ``traditional``.

Originals are drawn from documents of at least ``min_chars`` characters (200 by default: on a
60-character question a 40-character disclaimer is not a "light edit" any more).

Distinct but similar (negatives):

``templated_answer_pairs``: the issue's negatives, found in the real data, not planted: two
consultations whose doctor answers are the same stock text (identical or near-identical answers)
but whose patient questions differ (Huatuo-26M test, Toyhom). Dedup must keep them apart.

``plant_distinct``: a *different* question written from the same template as a real one
(stricter than the issue asks; a known limit of character similarity):

- ``drug``     one drug name replaced by another drug (every occurrence of it);
- ``dose``     one dose number replaced (``0.5g`` -> ``1g``; numbers followed by a dose unit);
- ``age``      one age replaced (``38岁`` -> ``62岁``);
- ``symptom``  one symptom replaced by another symptom (every occurrence of it);
- ``case``     all of the above that the text has: another patient on the same template.

Drug and symptom names come from the seed's 39health lexicons (``slot_lexicon``). Everything else
in the text, the template, is left as it is.
"""

from __future__ import annotations

import random
import re

import numpy as np

KINDS = ("char_edit_3pct", "sentence_drop", "sentence_swap", "disclaimer", "traditional")
MILD_KINDS = ("char_noise", "sentence_swap_3", "sentence_drop_small", "boilerplate", "traditional")
DISTINCT_KINDS = ("drug", "dose", "age", "symptom", "case")

DISCLAIMERS = (
    "免责声明：本文内容仅供参考，不能作为诊断及医疗的依据，如有不适请及时就医。",
    "以上回答仅供参考，具体请遵医嘱。更多健康问题欢迎关注本平台。",
    "温馨提示：网上咨询不能代替面诊，请到正规医院进一步检查。",
    "本回答由平台医生提供，转载请注明出处，仅作健康科普使用。",
)

_SENT = re.compile(r"(?<=[。！？；!?\n])")


def _sentences(text: str) -> list[str]:
    return [s for s in _SENT.split(text) if s]


def common_cjk(texts, k: int = 3000) -> list[str]:
    """The ``k`` most frequent CJK characters of ``texts``: what a typo or an OCR slip puts in."""
    from collections import Counter

    c = Counter(ch for t in texts for ch in t if "\u4e00" <= ch <= "\u9fff")
    return [ch for ch, _ in c.most_common(k)]


def char_edit(text: str, rng: random.Random, rate: float = 0.03, pool: list[str] | None = None) -> str:
    """Exactly ``rate`` of the text's letters/digits/CJK characters (those the canonical form
    keeps; at least one) edited at distinct positions, one third each: substituted by another
    character of ``pool``, a ``pool`` character inserted before it, deleted."""
    pool = pool or [c for c in text if "\u4e00" <= c <= "\u9fff"] or ["的"]
    where = [i for i, c in enumerate(text) if c.isalnum()]
    if not where:
        return text
    edits = dict.fromkeys(rng.sample(where, max(1, round(rate * len(where)))))
    for i in edits:
        edits[i] = rng.choice(("sub", "ins", "del"))
    out = []
    for i, c in enumerate(text):
        op = edits.get(i)
        if op is None:
            out.append(c)
        elif op == "sub":
            out.append(next((x for x in (rng.choice(pool) for _ in range(8)) if x != c), "的"))
        elif op == "ins":
            out += [rng.choice(pool), c]
    return "".join(out)


def char_noise(text: str, rng: random.Random, rate: float = 0.02) -> str:
    """The milder edit (``MILD_KINDS``): <= ``rate`` x U(0.5, 1) of all characters, positions drawn
    with replacement, half substitutions, a quarter insertions, a quarter deletions."""
    chars = list(text)
    edits = max(1, int(len(chars) * rate * rng.uniform(0.5, 1.0)))
    pool = [c for c in text if "\u4e00" <= c <= "\u9fff"] or ["的"]
    for _ in range(edits):
        p = rng.randrange(len(chars))
        op = rng.random()
        if op < 0.5:
            chars[p] = rng.choice(pool)
        elif op < 0.75:
            chars.insert(p, rng.choice(pool))
        elif len(chars) > 1:
            del chars[p]
    return "".join(chars)


def sentence_swap(text: str, rng: random.Random, min_sentences: int = 2) -> str | None:
    """Two adjacent sentences swapped (texts of ``min_sentences`` and more)."""
    s = _sentences(text)
    if len(s) < min_sentences:
        return None
    i = rng.randrange(len(s) - 1)
    s[i], s[i + 1] = s[i + 1], s[i]
    out = "".join(s)
    return out if out != text else None


def sentence_drop(text: str, rng: random.Random) -> str | None:
    """Any one sentence dropped (texts of 2 sentences and more: short texts included)."""
    s = _sentences(text)
    real = [i for i, x in enumerate(s) if x.strip()]
    if len(real) < 2:
        return None
    i = rng.choice(real)
    out = "".join(s[:i] + s[i + 1 :])
    return out if out.strip() and out != text else None


def sentence_drop_small(text: str, rng: random.Random) -> str | None:
    """The milder drop (``MILD_KINDS``): a sentence of <= 10 % of the text, texts of >= 4 sentences."""
    s = _sentences(text)
    small = [i for i, x in enumerate(s) if len(x) <= 0.1 * len(text) and len(x.strip()) > 3]
    if len(s) < 4 or not small:
        return None
    i = rng.choice(small)
    return "".join(s[:i] + s[i + 1 :])


def disclaimer(text: str, rng: random.Random) -> str:
    return text.rstrip() + "\n" + rng.choice(DISCLAIMERS)


def traditional(text: str, rng: random.Random) -> str | None:
    import opencc

    out = opencc.OpenCC("s2t").convert(text)
    return out if out != text else None


_MAKERS = {
    "char_edit_3pct": char_edit,
    "sentence_drop": sentence_drop,
    "sentence_swap": sentence_swap,
    "disclaimer": disclaimer,
    "traditional": traditional,
    "char_noise": char_noise,
    "sentence_swap_3": lambda t, rng: sentence_swap(t, rng, min_sentences=3),
    "sentence_drop_small": sentence_drop_small,
    "boilerplate": disclaimer,
}


def plant(
    docs: list[tuple[str, str]],
    per_kind: int,
    seed: int = 0,
    kinds: tuple[str, ...] = KINDS,
    min_chars: int = 200,
    max_chars: int | None = None,
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """Make ``per_kind`` copies of each kind from distinct originals in ``docs`` (texts of
    ``min_chars`` to ``max_chars`` characters).

    Returns (copies as (id, text), truth as (copy id, original id, kind)). Copy ids are
    ``<original id>~<kind>``. ``char_edit_3pct`` draws its characters from the 3,000 most frequent
    CJK characters of ``docs``.
    """
    rng = random.Random(seed)
    pool = [d for d in docs if len(d[1]) >= min_chars and (max_chars is None or len(d[1]) <= max_chars)]
    rng.shuffle(pool)
    common = common_cjk(t for _, t in pool[:5000]) if "char_edit_3pct" in kinds else None
    copies, truth = [], []
    it = iter(pool)
    for kind in kinds:
        made = 0
        while made < per_kind:
            try:
                oid, text = next(it)
            except StopIteration:
                break
            if kind == "char_edit_3pct":
                new = char_edit(text, rng, 0.03, common)
            else:
                new = _MAKERS[kind](text, rng)
            if not new or new == text:
                continue
            cid = f"{oid}~{kind}"
            copies.append((cid, new))
            truth.append((cid, oid, kind))
            made += 1
    return copies, truth


# ----------------------------------------------------------------------- templated answers
def huatuo_qa(raw) -> list[tuple[str, str, str]]:
    """Huatuo-26M test (``Zhongjing_CMtMedQA/data/huatuo26M_test.json`` under ``raw``) as
    ``(id, question, answer)``: question = instruction lines + input, answer = output lines; ids
    ``huatuo26m_test:<position>``. The document is ``question + "\\n" + answer`` (as
    ``cumed.eval_sets.huatuo26m_test`` reads an item)."""
    import json
    from pathlib import Path

    items = json.loads((Path(raw) / "Zhongjing_CMtMedQA" / "data" / "huatuo26M_test.json").read_text(encoding="utf-8"))
    out = []
    for i, x in enumerate(items):
        q = "\n".join(p for p in list(x.get("instruction") or []) + [x.get("input") or ""] if p)
        a = "\n".join(p for p in x.get("output") or [] if p)
        if q and a:
            out.append((f"huatuo26m_test:{i}", q, a))
    return out


def last_line_qa(docs: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """Consultations written ``title\\nask\\nanswer`` (Toyhom, as the pretraining recipe reads
    them) as ``(id, question, answer)``: the answer is the last line; texts of one line are left
    out, and of texts with the same canonical form only the first is kept (the Toyhom CSV and text
    blocks hold the same consultations)."""
    from curation.dedup.canonical import canonical

    out, seen = [], set()
    for i, t in docs:
        lines = t.strip().split("\n")
        c = canonical(t)
        if len(lines) < 2 or c in seen:
            continue
        seen.add(c)
        out.append((i, "\n".join(lines[:-1]), lines[-1]))
    return out


def templated_answer_pairs(items: list[tuple[str, str, str]], min_answer: float = 0.5, max_question: float = 0.4,
                           n: int = 5) -> list[tuple[str, str, float, float]]:
    """The negatives of issue #17: pairs of ``(id, question, answer)`` items whose doctor answers are
    the same stock text (actual character-``n``-gram Jaccard of the answers >= ``min_answer``)
    but whose patient questions are distinct (Jaccard of the questions < ``max_question``).

    Returns ``(id a, id b, answer Jaccard, question Jaccard)``. Answers are grouped by the
    ``jaccard`` rule (``find_duplicates(verify="jaccard", threshold=min_answer)`` over the answers
    alone), then every pair within a group is measured. ``max_question`` 0.4: pairs with more
    similar questions are the same question re-posted with a reworded title (read by hand on the
    seed's Huatuo-26M test and Toyhom: 0.43 and up are re-posts, 0.33-0.38 distinct questions on
    one template)."""
    from itertools import combinations

    from curation.dedup.canonical import canonical_batch, jaccard, ngram_sets
    from curation.dedup.resolve import find_duplicates

    by = {i: (q, a) for i, q, a in items}
    groups: dict[str, set[str]] = {}
    for d in find_duplicates([(i, a) for i, _, a in items], verify="jaccard", threshold=min_answer, n=n):
        groups.setdefault(d.duplicate_of, {d.duplicate_of}).add(d.id)
    out = []
    for members in groups.values():
        for x, y in combinations(sorted(members), 2):
            cps, lens = canonical_batch([by[x][0], by[y][0], by[x][1], by[y][1]])
            qa, qb, aa, ab = ngram_sets(list(np.split(cps, np.cumsum(lens)[:-1])), n)
            jq, ja = jaccard(qa, qb), jaccard(aa, ab)
            if ja >= min_answer and jq < max_question:
                out.append((x, y, ja, jq))
    return out


def merged_pairs(decisions, pairs) -> list[tuple[str, str]]:
    """The pairs ``(a, b, ...)`` whose two documents ``decisions`` put in one cluster."""
    keeper = {d.id: d.duplicate_of for d in decisions}
    return [(p[0], p[1]) for p in pairs if keeper.get(p[0], p[0]) == keeper.get(p[1], p[1])]


# ----------------------------------------------------------------------- distinct but similar
_AGE = re.compile(r"(?<![\d.])(\d{1,2})(?=\s*(?:周岁|岁))")
_DOSE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(?=\s*(?:mg|毫克|μg|ug|微克|g|克|ml|mL|毫升|片|粒|支|袋|丸|单位|IU|iu)(?![a-zA-Z]))")
_FORM = re.compile(r"(?:肠溶|缓释|控释|分散|泡腾|咀嚼|软)?(?:片|胶囊|颗粒|注射液|口服液|口服溶液|混悬液|丸|乳膏|软膏|膏|散|糖浆|滴眼液|栓)$")


def slot_lexicon(raw) -> dict[str, list[str]]:
    """``{"drug": [...], "symptom": [...]}`` from the seed's 39health files (``raw`` = the raw folder):
    drug names of the ``drug`` column of ``disease.csv`` (whole names and the names without their
    dosage form, ``阿莫西林颗粒`` -> ``阿莫西林``; truncated ``...`` names dropped) and the terms of
    ``symptom_vocab.txt``; 2-8 characters each."""
    import csv
    from pathlib import Path

    base = Path(raw) / "QASystemOnMedicalGraph_39health" / "data"
    drugs: set[str] = set()
    with open(base / "disease.csv", encoding="gb18030", newline="") as f:
        for row in csv.DictReader(f):
            for w in (row.get("drug") or "").replace("[详细]", " ").split():
                if w.endswith("...") or not re.fullmatch(r"[\u4e00-\u9fffA-Za-z0-9]+", w):
                    continue
                for name in (w, _FORM.sub("", w)):
                    if 2 <= len(name) <= 8:
                        drugs.add(name)
    symptoms = {w.strip() for w in (base / "symptom_vocab.txt").read_text(encoding="utf-8-sig").splitlines()}
    symptoms = {w for w in symptoms if 2 <= len(w) <= 8 and re.fullmatch(r"[\u4e00-\u9fff]+", w)}
    # "头痛片" without its form is "头痛": a name that is also a symptom term is a symptom
    return {"drug": sorted(drugs - symptoms), "symptom": sorted(symptoms)}


def _terms_in(text: str, terms: set[str]) -> list[str]:
    """Lexicon terms in ``text``, leftmost-longest, in order of appearance (distinct)."""
    out, i = [], 0
    while i < len(text):
        for n in range(8, 1, -1):
            if text[i : i + n] in terms:
                if text[i : i + n] not in out:
                    out.append(text[i : i + n])
                i += n
                break
        else:
            i += 1
    return out


def _other_number(old: str, rng: random.Random, kind: str) -> str:
    if kind == "age":
        new = str(rng.choice([a for a in range(1, 90) if str(a) != old]))
    else:
        v = float(old) * rng.choice((0.25, 0.5, 2, 3, 4))
        new = str(int(v)) if v == int(v) else f"{v:g}"
    return new if new != old else str(int(float(old)) + 1)


def twin(text: str, rng: random.Random, kind: str, lexicon: dict[str, list[str]], _sets: dict | None = None) -> str | None:
    """The same text with one ``kind`` value (``DISTINCT_KINDS``) changed everywhere it occurs;
    ``None`` when the text has no such value. ``case`` changes every value of every kind."""
    kinds = ("drug", "dose", "age", "symptom") if kind == "case" else (kind,)
    out = text
    for k in kinds:
        if k in ("age", "dose"):
            pat = _AGE if k == "age" else _DOSE
            found = sorted({m.group(1) for m in pat.finditer(out)})
            if not found:
                continue
            chosen = found if kind == "case" else [rng.choice(found)]
            new = {v: _other_number(v, rng, k) for v in chosen}
            out = pat.sub(lambda m: new.get(m.group(1), m.group(1)), out)
        else:
            terms = (_sets or {}).get(k) or set(lexicon[k])
            found = _terms_in(out, terms)
            if not found:
                continue
            chosen = found if kind == "case" else [rng.choice(found)]
            pool = [w for w in lexicon[k] if w not in out]  # a new value, not one the text already has
            if not pool:
                continue
            for v in chosen:
                out = out.replace(v, rng.choice(pool))
    return out if out != text else None


def plant_distinct(
    docs: list[tuple[str, str]],
    per_kind: int,
    lexicon: dict[str, list[str]],
    seed: int = 0,
    kinds: tuple[str, ...] = DISTINCT_KINDS,
    min_chars: int = 0,
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """``per_kind`` twins of each kind (``twin``) from distinct originals in ``docs``: documents that
    must *not* be merged with their original. Returns (twins as (id, text), truth as (twin id,
    original id, kind)); twin ids are ``<original id>~distinct_<kind>``. A kind whose value few
    texts carry (doses) may get fewer than ``per_kind``."""
    rng = random.Random(seed)
    sets = {k: set(v) for k, v in lexicon.items()}
    pool = [d for d in docs if len(d[1]) >= min_chars]
    rng.shuffle(pool)
    used: set[str] = set()
    twins, truth = [], []
    for kind in kinds:
        made = 0
        for oid, text in pool:
            if made >= per_kind:
                break
            if oid in used:
                continue
            new = twin(text, rng, kind, lexicon, sets)
            if not new:
                continue
            used.add(oid)
            tid = f"{oid}~distinct_{kind}"
            twins.append((tid, new))
            truth.append((tid, oid, kind))
            made += 1
    return twins, truth


def false_merges(decisions, distinct_truth) -> dict:
    """Planted distinct pairs that dedup merged (twin and original in one cluster), per kind:
    ``{"merged": n, "pairs": n, "per_kind": {kind: (merged, pairs)}, "examples": [(twin id, original id)]}``."""
    keeper = {d.id: d.duplicate_of for d in decisions}
    per: dict[str, list[int]] = {}
    examples = []
    for tid, oid, kind in distinct_truth:
        merged = keeper.get(tid, tid) == keeper.get(oid, oid)
        per.setdefault(kind, [0, 0])
        per[kind][0] += merged
        per[kind][1] += 1
        if merged:
            examples.append((tid, oid))
    return {"merged": sum(v[0] for v in per.values()), "pairs": sum(v[1] for v in per.values()),
            "per_kind": {k: tuple(v) for k, v in per.items()}, "examples": examples}


def score(decisions, truth, planted_ids: set[str] | None = None) -> dict:
    """Pair precision/recall of ``decisions`` against planted ``truth``.

    A planted pair is found when one document is recorded as ``duplicate_of`` the other or
    both point to the same keeper. Precision is over predicted pairs that involve a planted
    copy (pairs among untouched real documents have no label and are counted separately).
    """
    keeper = {d.id: d.duplicate_of for d in decisions}

    def root(x):
        return keeper.get(x, x)

    found: dict[str, list[int]] = {}
    for cid, oid, kind in truth:
        ok = root(cid) == root(oid)
        found.setdefault(kind, [0, 0])
        found[kind][0] += ok
        found[kind][1] += 1
    copy_of = {cid: oid for cid, oid, _ in truth}
    planted = planted_ids if planted_ids is not None else set(copy_of)
    tp = fp = other = 0
    for d in decisions:
        if d.id in planted or d.duplicate_of in planted:
            a, b = d.id, d.duplicate_of
            ga, gb = copy_of.get(a, a), copy_of.get(b, b)
            if ga == gb:
                tp += 1
            else:
                fp += 1
        else:
            other += 1
    total_found = sum(v[0] for v in found.values())
    total = sum(v[1] for v in found.values())
    return {
        "recall": total_found / max(total, 1),
        "precision": tp / max(tp + fp, 1),
        "per_kind": {k: v[0] / max(v[1], 1) for k, v in found.items()},
        "false_pairs": fp,
        "unlabelled_pairs": other,
    }
