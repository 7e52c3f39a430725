"""Planted near-duplicates over real documents: the ground truth for dedup tests and benchmarks.

Each kind imitates a duplicate seen in scraped medical text:

- ``char_noise``     <= 2 % of characters substituted, inserted or deleted (OCR / re-typing);
- ``sentence_swap``  two adjacent sentences swapped (re-ordered answer);
- ``sentence_drop``  one short sentence (<= 10 % of the text) dropped;
- ``boilerplate``    a site disclaimer appended (reposts add one);
- ``traditional``    the whole text converted to Traditional script (OpenCC s2t): HK/TW mirrors.

Originals are drawn from documents of at least ``min_chars`` characters: on a 60-character
question a 40-character disclaimer is not a "light edit" any more.
"""

from __future__ import annotations

import random
import re

KINDS = ("char_noise", "sentence_swap", "sentence_drop", "boilerplate", "traditional")

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
