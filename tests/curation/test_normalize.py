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

    from curation.steps.normalize import _BLANK_LINES, _ZERO_WIDTH, clean_whitespace

    def definition(text):
        text = text.translate(_ZERO_WIDTH).replace("\r\n", "\n").replace("\r", "\n")
        text = re.sub(r"[ \t\u00a0\u2000-\u200a\u202f\u205f]+", " ", text)
        text = re.sub(r"[ \t\u3000]+\n", "\n", text)
        return _BLANK_LINES.sub("\n\n", text).strip()

    r = random.Random(3)
    alphabet = list(" \t\n\r\u3000\u00a0\u2002\u200a\u202f\u205f\u200bab中") + [" \n", "  ", "\t\n", "\u3000\n"]
    for _ in range(20_000):
        text = "".join(r.choice(alphabet) for _ in range(r.randint(0, 20)))
        assert clean_whitespace(text) == definition(text), repr(text)
