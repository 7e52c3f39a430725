"""Planted near-duplicates over real documents: the ground truth for dedup tests and benchmarks.

Each kind imitates a duplicate seen in scraped medical text:

- ``char_noise``     <= 2 % of characters substituted, inserted or deleted (OCR / re-typing);
- ``sentence_swap``  two adjacent sentences swapped (re-ordered answer);
- ``sentence_drop``  one short sentence (<= 10 % of the text) dropped;
- ``boilerplate``    a site disclaimer appended (reposts add one);
- ``traditional``    the whole text converted to Traditional script (OpenCC s2t): HK/TW mirrors.

Originals are drawn from documents of at least ``min_chars`` characters: on a 60-character
question a 40-character disclaimer is not a "light edit" any more.

Distinct but similar (negatives, ``plant_distinct``): a *different* question written from the same
template as a real one, which dedup must keep apart from it:

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

KINDS = ("char_noise", "sentence_swap", "sentence_drop", "boilerplate", "traditional")
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


def char_noise(text: str, rng: random.Random, rate: float = 0.02) -> str:
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


def sentence_swap(text: str, rng: random.Random) -> str | None:
    s = _sentences(text)
    if len(s) < 3:
        return None
    i = rng.randrange(len(s) - 1)
    s[i], s[i + 1] = s[i + 1], s[i]
    out = "".join(s)
    return out if out != text else None


def sentence_drop(text: str, rng: random.Random) -> str | None:
    s = _sentences(text)
    small = [i for i, x in enumerate(s) if len(x) <= 0.1 * len(text) and len(x.strip()) > 3]
    if len(s) < 4 or not small:
        return None
    i = rng.choice(small)
    return "".join(s[:i] + s[i + 1 :])


def boilerplate(text: str, rng: random.Random) -> str:
    return text.rstrip() + "\n" + rng.choice(DISCLAIMERS)


def traditional(text: str, rng: random.Random) -> str | None:
    import opencc

    out = opencc.OpenCC("s2t").convert(text)
    return out if out != text else None


_MAKERS = {
    "char_noise": char_noise,
    "sentence_swap": sentence_swap,
    "sentence_drop": sentence_drop,
    "boilerplate": boilerplate,
    "traditional": traditional,
}


def plant(
    docs: list[tuple[str, str]],
    per_kind: int,
    seed: int = 0,
    kinds: tuple[str, ...] = KINDS,
    min_chars: int = 200,
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """Make ``per_kind`` copies of each kind from distinct originals in ``docs``.

    Returns (copies as (id, text), truth as (copy id, original id, kind)). Copy ids are
    ``<original id>~<kind>``.
    """
    rng = random.Random(seed)
    pool = [d for d in docs if len(d[1]) >= min_chars]
    rng.shuffle(pool)
    copies, truth = [], []
    it = iter(pool)
    for kind in kinds:
        made = 0
        while made < per_kind:
            try:
                oid, text = next(it)
            except StopIteration:
                break
            new = _MAKERS[kind](text, rng)
            if not new or new == text:
                continue
            cid = f"{oid}~{kind}"
            copies.append((cid, new))
            truth.append((cid, oid, kind))
            made += 1
    return copies, truth


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
