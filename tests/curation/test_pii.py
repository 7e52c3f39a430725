"""PII redaction: planted valid identifiers are redacted, medical look-alikes are not."""

import random

import pytest

from curation.steps.pii import PIIRedactor, id_check_digit, luhn_ok, redact, valid_id_card

rng = random.Random(7)
SENTENCES = [
    "患者男，49岁，因尿频尿急就诊，联系方式{}，建议复查前列腺B超。",
    "家属留下的信息是{}，请在术后第3天随访。",
    "既往高血压病史10年，{}，规律服用硝苯地平控释片每次30mg。",
]


def gen_id18():
    region = rng.choice(["110105", "310104", "440305", "510107", "650102"])
    birth = f"{rng.randint(1940, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    first17 = region + birth + f"{rng.randint(0, 999):03d}"
    return first17 + id_check_digit(first17)


def luhn_complete(prefix_and_body: str) -> str:
    for d in "0123456789":
        if luhn_ok(prefix_and_body + d):
            return prefix_and_body + d
    raise AssertionError


def gen_card(n=16, grouped=False):
    body = rng.choice(["6222", "6228", "4367", "5187"]) + "".join(rng.choice("0123456789") for _ in range(n - 5))
    card = luhn_complete(body)
    return " ".join(card[i : i + 4] for i in range(0, len(card), 4)) if grouped else card


def gen_mobile():
    num = f"1{rng.choice('3456789')}{rng.randint(0, 9)}{rng.randint(0, 99999999):08d}"
    return rng.choice([num, f"+86 {num}", f"86-{num}", f"{num[:3]}-{num[3:7]}-{num[7:]}", f"{num[:3]} {num[3:7]} {num[7:]}"])


def planted():
    out = []
    for _ in range(12):
        out.append(("ID_CARD", gen_id18()))
    out.append(("ID_CARD", "110105491231002"))  # legacy 15-digit
    out.append(("ID_CARD", "11010519491231002X"))
    for _ in range(8):
        out.append(("BANK_CARD", gen_card(16)))
        out.append(("BANK_CARD", gen_card(rng.choice([16, 19]), grouped=True)))
    for _ in range(10):
        out.append(("PHONE", gen_mobile()))
    out += [("PHONE", x) for x in ["010-62345678", "(021)58765432", "0755-2345678", "（0571）87654321", "400-820-8820"]]
    out += [("EMAIL", x) for x in ["zhang.san@163.com", "dr_li2020@pumch.cn", "a.b-c@mail.sysu.edu.cn"]]
    return out


@pytest.mark.parametrize("typ,value", planted())
def test_planted_identifiers_are_redacted(typ, value):
    for tpl in SENTENCES:
        text = tpl.format(value)
        new, counts = redact(text)
        assert f"<{typ}>" in new, (text, new)
        assert value not in new
        assert counts.get(typ) == 1, counts
        # the surrounding sentence is intact
        assert new.replace(f"<{typ}>", value) == text


@pytest.mark.parametrize(
    "text,typ",
    [
        ("住院号：ZY20190312，入院诊断良性前列腺增生。", "MEDICAL_RECORD_NO"),
        ("病案号 00876543 患者出院。", "MEDICAL_RECORD_NO"),
        ("门诊号为123456789，复诊。", "MEDICAL_RECORD_NO"),
        ("有问题加我QQ号：123456789咨询", "QQ"),
        ("微信：wxid_abc123 私聊", "WECHAT"),
        ("护照号码E12345678已登记", "PASSPORT"),
        ("登录IP地址：192.168.1.10", "IP"),
        ("来自 IP 10.0.0.254 的访问", "IP"),
    ],
)
def test_keyword_identifiers(text, typ):
    new, counts = redact(text)
    assert counts == {typ: 1}, (new, counts)
    assert f"<{typ}>" in new


LOOKALIKES = [
    "血肌酐 135μmol/L", "每次0.4mg，每日2次", "2019年3月12日", "PSA 4.0ng/ml", "血压140/90mmHg",
    "尿常规白细胞15/HP", "2019-03-12复查", "ICD-10编码N40.1", "价格1280元", "2023年", "体温37.8℃",
    "血小板计数 250×10^9/L", "HbA1c 7.2%", "eGFR 58 ml/min/1.73m²", "尿酸420μmol/L", "前列腺体积 45.6 cm3",
    "P<0.001", "OR=1.35，95%CI 1.12-1.63", "n=1327", "随访12~36个月", "第1.2.3节", "剂量10-20mg/kg",
    "血钾3.5-5.5mmol/L", "心率 76次/分", "2015-2020年间共纳入315例", "编号 20190312001", "基金项目：162777166",
    "国家自然科学基金（81670637）", "邮编 300193", "DOI 10.12114/j.issn.1007-9572.2022.0616",
    "门冬酰胺酶（EC 3.5.1.1）", "囊肿5.64.52.9", "OVX groupand SHAM", "LVX:Levofloxacin",
]


@pytest.mark.parametrize("text", LOOKALIKES)
def test_medical_numbers_untouched(text):
    new, counts = redact(f"患者{text}，继续观察。")
    assert counts == {} and new == f"患者{text}，继续观察。", (new, counts)


def test_checksum_failures_left_alone():
    good = gen_id18()
    bad_check = good[:17] + ("0" if good[17] != "0" else "1")
    assert valid_id_card(good) and not valid_id_card(bad_check)
    card = gen_card(16)
    bad_card = card[:-1] + str((int(card[-1]) + 1) % 10)
    assert luhn_ok(card) and not luhn_ok(bad_card)
    for s in (bad_check, bad_card, "19990230123456789X"):  # wrong check digit / Luhn / impossible date
        new, counts = redact(f"检验单号{s}，结果阴性。")
        assert s in new and "ID_CARD" not in counts and "BANK_CARD" not in counts, (s, new)


def test_step_counts_per_type():
    step = PIIRedactor()
    from datatrove.data import Document

    docs = [Document(text=f"电话{gen_mobile()}，身份证{gen_id18()}。", id=str(i)) for i in range(3)]
    out = list(step.run(iter(docs)))
    assert all("<PHONE>" in d.text and "<ID_CARD>" in d.text for d in out)
    assert step.stats["pii_PHONE"].total == 3 and step.stats["pii_ID_CARD"].total == 3
    assert step.stats["changed"].total == 3
    with pytest.raises(ValueError, match="unknown PII types"):
        PIIRedactor(types=["NAME"])
    only_phone = PIIRedactor(types=["PHONE"])
    t = only_phone.transform("邮箱a@b.com 电话13812345678")
    assert "a@b.com" in t and "<PHONE>" in t


# The patterns as first written (a lookbehind first); PATTERNS are written to start with a
# character or class (``pii._first``) for speed and must find exactly the same.
_B, _E, _SEP = r"(?<![0-9A-Za-z])", r"(?![0-9A-Za-z])", r"[ \-]?"
DEFINITIONS = {
    "ID_CARD": _B + r"(?P<v>[1-9]\d{16}[\dXx]|[1-9]\d{14})" + _E,
    "BANK_CARD": _B + r"(?P<v>\d{4}(?P<s>[ \-])\d{4}(?P=s)\d{4}(?:(?P=s)\d{4})?(?:(?P=s)\d{1,3})?|\d{13,19})" + _E,
    "PHONE": _B + r"(?P<v>(?:\+?86" + _SEP + r")?1[3-9]\d" + _SEP + r"\d{4}" + _SEP + r"\d{4})" + _E,
    "LANDLINE": r"(?<![0-9A-Za-z.\-])(?P<v>(?:\(0\d{2,3}\)|（0\d{2,3}）|0\d{2,3}-)\s?[2-9]\d{6,7}(?:-\d{1,4})?"
                r"|[48]00-?\d{3}-?\d{4})" + _E,
    "IP": r"(?<![A-Za-z])(?:IP|ip|Ip)(?:地址)?\s*(?:为|是)?\s*[:：]?\s*(?P<v>(?:\d{1,3}\.){3}\d{1,3})(?![\d.])",
}


def test_fast_patterns_find_what_their_definitions_find():
    import re

    from curation.steps import pii

    fast = {"ID_CARD": pii.PATTERNS[1][1], "BANK_CARD": pii.PATTERNS[2][1], "PHONE": pii.PATTERNS[3][1],
            "LANDLINE": pii.PATTERNS[4][1], "IP": pii.PATTERNS[-1][1]}
    maybe = re.compile(r"\d{4}|@|\d\.\d{1,3}\.\d|号|QQ|qq|微信|信|vx|VX|WeChat|wechat")
    r = random.Random(11)
    values = [v for _, v in planted()] + ["IP地址: 10.1.2.3", "ip 8.8.8.8", "xIP 1.2.3.4", ".400-820-8820", "-010-62345678"]
    alphabet = list("0123456789" * 3) + list(" -.+()（）:：xXIPpiabc中") + ["号", "信", "微信", "86", "\n", "１", "٣",
                                                                       "WeChat", "wechat", "Wechat"]
    for _ in range(20_000):
        parts = [r.choice(alphabet) for _ in range(r.randint(0, 8))]
        parts.insert(r.randint(0, len(parts)), r.choice(values))
        text = "".join(parts)
        for typ, definition in DEFINITIONS.items():
            assert [m.span("v") for m in re.finditer(definition, text)] == \
                   [m.span("v") for m in fast[typ].finditer(text)], (typ, text)
        assert pii._maybe(text) == (maybe.search(text) is not None), text


MAYBE_EDGES = [
    "", "@", "a@b", "挂号", "相信", "QQ", "Qq", "qq", "vx", "VX", "vX", "v", "x", "Q",
    "1234", "123", "12 34", "１２３４", "٠١٢٣", "१२३४", "12३4",  # \d is every Unicode decimal digit
    "1.2.3", "1.22.3", "1.222.3", "1.2222.3", "1..3", ".1.2", "1.2.", "1.2.x", "a1.2.3b", "5.6 4.5 2.9",
    "EC 3.5.1.1", "血压140/90", "体温36.5度", "普通的一句话，没有数字。", "x" * 300 + "@",
    "WeChat", "wechat", "Wechat", "weChat", "WeCha", "eChat", "WECHAT", "加WeChat: zhang_san88",
]


def test_a_wechat_id_after_wechat_is_redacted():
    """The pre-check let a text through only for its other literals: an id after ``WeChat`` or
    ``wechat`` with no digit run, @ or other keyword in the text was never looked at."""
    from curation.steps.pii import PIIRedactor

    for word in ("WeChat", "wechat"):
        text, counts = redact(f"有问题加我{word}: zhang_san88 咨询")
        assert text == f"有问题加我{word}: <WECHAT> 咨询" and counts == {"WECHAT": 1}
        assert PIIRedactor().transform_batch([f"加{word}：doctor_li", "没有"]) == [f"加{word}：<WECHAT>", "没有"]


def _one_by_one_counts(step) -> dict:
    return {k: (v.n, v.total, v.mean, v.min, v.max) for k, v in step.stats.stats.items()}


def test_compiled_pre_check_is_maybe():
    """``pii_scan.maybe_pii`` says what ``pii._maybe`` says of each text, also where a pattern
    would only be completed by the next text of the chunk."""
    import numpy as np

    from curation.steps.pii import _maybe
    from curation.steps.pii_scan import maybe_pii

    rng = random.Random(1)
    texts = MAYBE_EDGES + ["".join(rng.choice("12.3QqvxVX号@ a") for _ in range(rng.randint(0, 8))) for _ in range(3000)]
    texts += ["".join(rng.choice(["We", "we", "Ch", "ch", "at", "W", "e", "C", "hat"]) for _ in range(rng.randint(1, 5)))
              for _ in range(2000)]
    texts += ["12", "34", "1.2", ".3", "Q", "Q", "v", "x", "WeC", "hat"]  # each half of a pattern, side by side
    cps = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
    got = maybe_pii(cps, np.array([len(t) for t in texts]))
    assert got.tolist() == [_maybe(t) for t in texts]
    assert 0 < got.sum() < len(texts)


def test_transform_batch_is_transform_one_by_one():
    """The step's chunk path (pre-check compiled, redaction of the flagged texts) gives every text
    and counter the one-by-one path gives; a lone surrogate sends the chunk one by one."""
    texts = MAYBE_EDGES + ["患者手机13912345678，QQ 12345678，邮箱 a@b.com", "住院号：ZY20190001", "\ud800孤立代理"]
    for chunk in (texts, texts[:-1]):
        one, many = PIIRedactor(), PIIRedactor()
        assert many.transform_batch(chunk) == [one.transform(t) for t in chunk]
        assert _one_by_one_counts(many) == _one_by_one_counts(one) and _one_by_one_counts(one)


@pytest.mark.skipif(not __import__("tests.conftest", fromlist=["RAW"]).RAW.exists(), reason="needs ../shared")
def test_transform_batch_on_the_real_corpus():
    """Every document of the real corpus, normalised, in chunks of 256: same texts and counters."""
    import sys
    from pathlib import Path

    from curation.steps.normalize import Normalize

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from filters_corpus import load_corpus

    norm = Normalize()
    texts = [norm.transform(t) for _, t in load_corpus()]
    one, many = PIIRedactor(), PIIRedactor()
    for start in range(0, len(texts), 256):
        chunk = texts[start:start + 256]
        assert many.transform_batch(chunk) == [one.transform(t) for t in chunk], start
    assert _one_by_one_counts(many) == _one_by_one_counts(one) and len(_one_by_one_counts(one)) >= 2  # e-mails, phones
