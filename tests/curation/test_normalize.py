"""Normalisation: each sub-step changes what it should, keeps what it must, and is counted."""

import pytest
from datatrove.data import Document

from curation.steps.normalize import Normalize, clean_html, clean_whitespace, normalize_unicode, to_simplified


@pytest.mark.parametrize("config", ["t2s", "t2s.json"])
def test_t2s_really_converts(config):
    trad = "醫生說這個藥每天吃兩次，請注意飲食與腎臟檢查。"
    simp = to_simplified(trad, config)
    assert simp == "医生说这个药每天吃两次，请注意饮食与肾脏检查。"
    assert Normalize(t2s=config).transform(trad) == simp


def test_bad_opencc_config_fails_at_build():
    with pytest.raises(ValueError, match="unknown OpenCC config"):
        Normalize(t2s="nope")


def test_unicode_keeps_cjk_punctuation_and_halves_alnum():
    s = "血压：１４０／９０ｍｍＨｇ，ＣＴ示（右肾）结石！是否手术？；"
    out = normalize_unicode(s)
    assert out == "血压：140／90mmHg，CT示（右肾）结石！是否手术？；"
    for p in "，。！？：；（）":
        assert normalize_unicode(p) == p
    assert normalize_unicode("m²") == "m²"  # NFKC would give m2
    assert normalize_unicode("e\u0301") == "\u00e9"  # NFC composes


def test_whitespace():
    s = "第一行  \t有空格\u200b   \r\n\n\n\n第二段\u3000\u3000\n\ufeff末尾  "
    assert clean_whitespace(s) == "第一行 有空格\n\n第二段\n末尾"


def test_html():
    s = "<p>前列腺&nbsp;增生</p><br/>A&amp;B&#x4E2D;&#25991;<table><tr><td>PSA</td><td>4.0</td></tr></table>P<0.05 <ID_CARD>"
    out = clean_html(s)
    assert "&" not in out.replace("A&B", "")
    assert "前列腺\xa0增生" in out and "A&B中文" in out
    assert "PSA | 4.0" in out
    assert "P<0.05" in out and "<ID_CARD>" in out and "<td>" not in out and "<p>" not in out


def test_stats_count_each_normalisation():
    step = Normalize()
    docs = [
        Document(text="醫生說", id="a"),  # t2s
        Document(text="ＣＴ检查", id="b"),  # unicode
        Document(text="检查  结果", id="c"),  # whitespace
        Document(text="肾&amp;膀胱", id="d"),  # html
        Document(text="已经是干净的简体中文。", id="e"),  # nothing
    ]
    out = list(step.run(iter(docs)))
    assert [d.text for d in out] == ["医生说", "CT检查", "检查 结果", "肾&膀胱", "已经是干净的简体中文。"]
    for key in ("changed_t2s", "changed_unicode", "changed_whitespace", "changed_html"):
        assert step.stats[key].total == 1, key
    assert step.stats["changed"].total == 4


def test_disabled_steps_do_nothing():
    step = Normalize(html=False, unicode=False, t2s=None, whitespace=False)
    s = "醫生  ＣＴ&amp;"
    assert step.transform(s) == s


def test_whitespace_matches_its_definition():
    """clean_whitespace skips lone spaces and tests for trailing spaces first (speed): the same text
    as replacing every run of horizontal whitespace and every trailing run."""
    import random
    import re

    from curation.steps.normalize import _BLANK_LINES, clean_whitespace

    zero_width = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)

    def definition(text):
        text = text.translate(zero_width).replace("\r\n", "\n").replace("\r", "\n")
        text = re.sub(r"[ \t\u00a0\u2000-\u200a\u202f\u205f]+", " ", text)
        text = re.sub(r"[ \t\u3000]+\n", "\n", text)
        return _BLANK_LINES.sub("\n\n", text).strip()

    r = random.Random(3)
    alphabet = list(" \t\n\r\u3000\u00a0\u2002\u200a\u202f\u205f\u200bab中") + [" \n", "  ", "\t\n", "\u3000\n"]
    for _ in range(20_000):
        text = "".join(r.choice(alphabet) for _ in range(r.randint(0, 20)))
        assert clean_whitespace(text) == definition(text), repr(text)


def test_compiled_scans_flag_every_text_the_patterns_change():
    """``normalize_scan`` lets a text skip the whitespace and full-width regexes only when they would
    leave it as is: on random texts over every character a pattern looks at (and their neighbours),
    no text the regexes change goes unflagged, and the flags are not all-True."""
    import random

    from curation.steps.normalize import SEP, _FULLWIDTH_ALNUM_RE, _halfwidth, clean_whitespace
    from curation.steps.normalize_scan import fullwidth_alnum, whitespace_changes

    r = random.Random(5)
    alphabet = list(" \t\n\r\u3000\u00a0\u2000\u2002\u200a\u200b\u200c\u200d\u2060\ufeff\u00ad\u202f\u205f"
                    "ab中。ＣＴ３ｍｇ\uff0f\uff20\uff5b") + [" \n", "  ", "\n\n", "\n\n\n", "前列腺", "\U00020000"]
    texts = ["".join(r.choice(alphabet) for _ in range(r.randint(0, 12))) for _ in range(20_000)]
    joined = SEP.join(texts)
    for max_blank in (0, 1, 2):
        ws = whitespace_changes(texts, joined, SEP)
        changed = [clean_whitespace(t, max_blank, strip=False) != t for t in texts]
        assert not any(c and not f for c, f in zip(changed, ws.tolist()))
        assert 0 < sum(changed) <= ws.sum() < len(texts)
    fw = fullwidth_alnum(texts, joined, SEP).tolist()
    assert fw == [_FULLWIDTH_ALNUM_RE.sub(_halfwidth, t) != t for t in texts]


def test_edge_space_is_what_strip_removes():
    """``edge_space`` flags exactly the texts ``str.strip`` changes, for every character Python
    counts as a space (at either end, alone, next to an astral character) and none other."""
    import random

    from curation.steps.normalize import SEP
    from curation.steps.normalize_scan import _SPACES, edge_space

    spaces = [chr(c) for c in _SPACES.tolist()]
    assert len(spaces) == 29 and " " in spaces and "\u3000" in spaces and "\x85" in spaces
    r = random.Random(7)
    alphabet = spaces + list("ab中。\x00\u200b\ufeff") + ["\U00020000", "前列腺"]
    texts = [*spaces, "", "中", *("".join(r.choice(alphabet) for _ in range(r.randint(0, 6))) for _ in range(20_000))]
    texts = [t.replace(SEP, "") for t in texts]
    flags = edge_space(texts, SEP.join(texts), SEP).tolist()
    assert flags == [t.strip() != t for t in texts]
    assert 0 < sum(flags) < len(texts)


def test_transform_batch_strips_edges_the_joined_run_leaves():
    """A chunk that the whitespace patterns leave alone, whose texts start or end with a space of
    each kind: stripped as one by one, and counted, without splitting the joined chunk."""
    from curation.steps.normalize import SEP
    from curation.steps.normalize_scan import _SPACES, whitespace_changes

    chunk = [f"{chr(c)}前列腺" if i % 2 else f"尿路感染{chr(c)}" for i, c in enumerate(_SPACES.tolist())
             if chr(c) not in "\r\n"] + ["无空格", "中间 有一个空格"]
    # the texts the whitespace patterns leave alone (a tab or an odd space they would change): the
    # chunk is then one the joined run returns as is, and only the strip changes texts
    chunk = [t for t, f in zip(chunk, whitespace_changes(chunk, SEP.join(chunk), SEP).tolist()) if not f]
    assert len(chunk) >= 12
    one, many = Normalize(), Normalize()
    want = [one.transform(t) for t in chunk]
    assert many.transform_batch(chunk) == want
    assert _counts(many) == _counts(one)
    assert _counts(one)["changed_whitespace"][1] >= len(chunk) - 2


def _counts(step) -> dict:
    return {k: (v.n, v.total, v.mean, v.min, v.max) for k, v in step.stats.stats.items()}


BATCH_EDGES = [
    "", " ", "  前后空格  ", "\u3000缩进\u3000", "a\r\nb\rc", "行尾空格 \n下一行\t\n", "\n\n\n\n多个空行\n\n\n\n",
    "零\u200b宽\ufeff字符", "ＣＴ检查３ｍｇ", "\u0301开头的组合符", "e\u0301 组合", "後來醫師說應該復查",
    "乾燥的頭髮", "<p>段落</p>结尾<", "<b", "r>跨文本的标签?", "&amp;实体&nbsp;", "&#x4E2D;", "<!-- 注释", "-->",
    "P<0.05 且 <5 mm", "tab\tin\tline", "\u00a0\u2003混合空格\u205f", "English only text.", "中文。\n\n\n英文 mixed",
]


def test_transform_batch_is_transform_one_by_one():
    """A chunk normalised in one call (texts joined by NUL) gives every text and every counter
    that ``transform`` gives one text at a time, also where a tag or a whitespace run could
    reach from one text into the next; a chunk holding a NUL goes one by one."""
    import random

    texts = BATCH_EDGES * 3
    random.Random(0).shuffle(texts)
    for chunk in (texts, texts[:2], texts + ["含\x00空字符"], ["\x00", "a\x00b", ""]):
        one, many = Normalize(), Normalize()
        want = [one.transform(t) for t in chunk]
        assert many.transform_batch(chunk) == want
        assert _counts(many) == _counts(one)
        if chunk is texts:  # every counter was exercised
            assert set(_counts(one)) == {f"changed_{k}" for k in ("html", "unicode", "t2s", "whitespace")}


@pytest.mark.skipif(not __import__("tests.conftest", fromlist=["RAW"]).RAW.exists(), reason="needs ../shared")
def test_transform_batch_on_the_real_corpus():
    """Every document of the real corpus (the filters' corpus: all pretraining sources and the
    dialogue and evaluation sources), in chunks of 256: same texts and counters."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from filters_corpus import load_corpus

    texts = [t for _, t in load_corpus()]
    one, many = Normalize(), Normalize()
    for start in range(0, len(texts), 256):
        chunk = texts[start:start + 256]
        assert many.transform_batch(chunk) == [one.transform(t) for t in chunk], start
    assert _counts(many) == _counts(one) and _counts(one)["changed_t2s"][1] > 0
