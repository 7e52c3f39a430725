"""PII redaction for Chinese medical text: identifiers that a regex can find *and* validate.

Each match is replaced by a typed placeholder and counted in the step's stats
(``pii_ID_CARD``, ``pii_PHONE``...). Types, in the order they are applied:

=================== ==================================================================== =====================
placeholder         what                                                                 validation
=================== ==================================================================== =====================
<EMAIL>             e-mail address                                                       shape
<ID_CARD>           resident ID, 18 digits (last may be X) or legacy 15 digits           province code, real birth date
                                                                                         (1900..this year), ISO 7064
                                                                                         MOD 11-2 check digit (18)
<BANK_CARD>         13-19 digits, optionally in groups of 4 (space or hyphen)            Luhn + issuer digit 3-6
<PHONE>             mobile 1[3-9]x xxxx xxxx (+86/86, spaces/hyphens), landline with    number plan
                    area code 0xx(x)-xxxxxxx(x) or (0xx)..., 400/800 service numbers
<MEDICAL_RECORD_NO> id after 住院号/病案号/门诊号/病历号/登记号/就诊卡号/医保卡号...           keyword required
<QQ> / <WECHAT>     number / id after QQ, 扣扣 / 微信, vx, WeChat                          keyword required
<PASSPORT>          id after 护照                                                          keyword required
<IP>                IPv4 address after IP/IP地址 (bare ones are EC numbers, sizes)        each octet 0-255
=================== ==================================================================== =====================

What is deliberately left alone: lab values, doses, dates, blood pressure, ICD codes, prices
and years never have the shape above, and a long digit string that fails its checksum is kept
as written (an 18-digit string with a wrong check digit or a 16-digit Luhn-invalid string is far
more likely a lab/order number or an OCR'd table than a real ID: false redaction would destroy
data while the value identifies nobody). Names and addresses are not attempted: Chinese names
need NER, and the sources we use already anonymise them (患者张某某).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable

from curation.steps.base import CumedTransform

# GB/T 2260 province-level codes (first two digits of a resident ID).
PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82 83 91".split()
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits of a resident ID."""
    return _ID_CHECK[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS)) % 11]


def _plausible_date(y: int, m: int, d: int) -> bool:
    try:
        day = _dt.date(y, m, d)
    except ValueError:
        return False
    return _dt.date(1900, 1, 1) <= day <= _dt.date.today()


def valid_id_card(s: str) -> bool:
    s = s.upper()
    if len(s) == 18:
        return (
            s[:2] in PROVINCES
            and _plausible_date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
            and id_check_digit(s[:17]) == s[17]
        )
    if len(s) == 15 and s.isdigit():
        return s[:2] in PROVINCES and _plausible_date(1900 + int(s[6:8]), int(s[8:10]), int(s[10:12]))
    return False


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        n = int(c)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def valid_bank_card(s: str) -> bool:
    d = re.sub(r"[ -]", "", s)
    return 13 <= len(d) <= 19 and d[0] in "3456" and luhn_ok(d)


def _valid_ip(s: str) -> bool:
    return all(int(p) <= 255 and (p == "0" or not p.startswith("0")) for p in s.split("."))


_B = r"(?<![0-9A-Za-z])"  # not glued to a longer alphanumeric token
_E = r"(?![0-9A-Za-z])"
_SEP = r"[ \-]?"


def _first(char: str, rest: str, glued: str = "0-9A-Za-z") -> str:
    """``char`` + ``rest``, where ``char`` may not follow a character of ``glued``: the same
    matches as ``(?<![glued])char rest``, but written so that the pattern starts with a character
    or class. Why: Python's ``re`` then jumps from one such character to the next in C, instead of
    running the whole pattern (a lookbehind first) at every position; on Chinese text, where the
    first character (a digit, ``+``, ``(``, ``I``) is rare, that made the ID, bank card and phone
    patterns 3-4x faster. The lookbehind sees ``char`` itself too, so it is ``glued`` + ``char``
    (two characters wide; at the text's start it cannot match, as the original cannot)."""
    return rf"{char}(?<![{glued}]{char}){rest}"


_MOBILE = r"1[3-9]\d" + _SEP + r"\d{4}" + _SEP + r"\d{4}"
_LANDLINE_REST = r"\s?[2-9]\d{6,7}(?:-\d{1,4})?"
_LANDLINE_GLUED = r"0-9A-Za-z.\-"  # a landline or service number may not follow a dot or hyphen either

# (type, regex with group "v" for the value to replace, validator or None). The readable
# definition of each is in the comment above it; ``_first`` says why they are written as they are.
PATTERNS: list[tuple[str, re.Pattern, Callable[[str], bool] | None]] = [
    ("EMAIL", re.compile(r"(?P<v>[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})"), None),
    # _B (?P<v>[1-9]\d{16}[\dXx] | [1-9]\d{14}) _E
    ("ID_CARD", re.compile(r"(?P<v>" + _first("[1-9]", r"(?:\d{16}[\dXx]|\d{14})") + ")" + _E), valid_id_card),
    # _B (?P<v>\d{4}(?P<s>[ -])\d{4}(?P=s)\d{4}((?P=s)\d{4})?((?P=s)\d{1,3})? | \d{13,19}) _E
    (
        "BANK_CARD",
        re.compile(r"(?P<v>" + _first(r"\d", r"(?:\d{3}(?P<s>[ \-])\d{4}(?P=s)\d{4}(?:(?P=s)\d{4})?(?:(?P=s)\d{1,3})?"
                                             r"|\d{12,18})") + ")" + _E),
        valid_bank_card,
    ),
    # _B (?P<v>(\+?86 _SEP)? 1[3-9]\d _SEP \d{4} _SEP \d{4}) _E: one branch per first character
    ("PHONE", re.compile(r"(?P<v>" + "|".join([_first(r"\+", "86" + _SEP + _MOBILE), _first("8", "6" + _SEP + _MOBILE),
                                               _first("1", _MOBILE[1:])]) + ")" + _E), None),
    # (?<![0-9A-Za-z.-]) (?P<v>(\(0\d{2,3}\) | （0\d{2,3}） | 0\d{2,3}-) \s?[2-9]\d{6,7}(-\d{1,4})? | [48]00-?\d{3}-?\d{4}) _E
    (
        "PHONE",
        re.compile(r"(?P<v>" + "|".join([
            _first(r"\(", r"0\d{2,3}\)" + _LANDLINE_REST, _LANDLINE_GLUED),
            _first("（", r"0\d{2,3}）" + _LANDLINE_REST, _LANDLINE_GLUED),
            _first("0", r"\d{2,3}-" + _LANDLINE_REST, _LANDLINE_GLUED),
            _first("4", r"00-?\d{3}-?\d{4}", _LANDLINE_GLUED),
            _first("8", r"00-?\d{3}-?\d{4}", _LANDLINE_GLUED),
        ]) + ")" + _E),
        None,
    ),
    (
        "MEDICAL_RECORD_NO",
        re.compile(
            r"(?:住院号|病案号|门诊号|病历号|住院病历号|登记号|就诊卡号|就诊号|医保卡号|社保卡号|患者ID|病人ID|ID号)"
            r"\s*(?:为|是)?\s*[:：#]?\s*(?P<v>[A-Za-z]{0,3}\d{4,14})" + _E
        ),
        None,
    ),
    ("QQ", re.compile(r"(?:QQ|qq|扣扣|Q号)(?:号码?|群)?\s*(?:为|是)?\s*[:：]?\s*(?P<v>[1-9]\d{4,11})" + _E), None),
    (
        "WECHAT",
        re.compile(
            r"(?<![A-Za-z])(?:微信|威信|WeChat|wechat|VX|vx|V信|v信)(?:号)?\s*(?:为|是)?\s*[:：]?\s*(?P<v>[A-Za-z][\-_A-Za-z0-9]{5,19})" + _E
        ),
        None,
    ),
    ("PASSPORT", re.compile(r"护照(?:号码?)?\s*(?:为|是)?\s*[:：]?\s*(?P<v>[A-Za-z]{1,2}\d{7,8})" + _E), None),
    # keyword required: bare dotted quads in medical text are EC numbers (EC 3.5.1.1) and sizes (5.6 4.5 2.9)
    # (?<![A-Za-z]) (IP|ip|Ip) (地址)? ... (?P<v>(\d{1,3}\.){3}\d{1,3}) (?![\d.])
    ("IP", re.compile(r"(?:" + _first("I", "[Pp]", "A-Za-z") + "|" + _first("i", "p", "A-Za-z") + ")"
                      r"(?:地址)?\s*(?:为|是)?\s*[:：]?\s*(?P<v>(?:\d{1,3}\.){3}\d{1,3})(?![\d.])"), _valid_ip),
]
PLACEHOLDERS = {t: f"<{t}>" for t, _, _ in PATTERNS}
# cheap pre-check: no 4-digit run, no @, no dotted quad, no keyword -> nothing to do. The same
# test as the regex ``\d{4}|@|\d\.\d{1,3}\.\d|号|QQ|qq|微信|信|vx|VX|WeChat|wechat`` (微信 contains 信),
# ~2x faster: substring tests for the literals and a regex that starts with a digit class for the
# rest. (WeChat and wechat were missing until issue #17's last round: a WeChat id after them was
# never redacted, as no other literal is needed for one.)
_MAYBE_LITERALS = ("@", "号", "信", "QQ", "qq", "vx", "VX", "WeChat", "wechat")
_MAYBE_DIGITS = re.compile(r"\d(?:\d{3}|\.\d{1,3}\.\d)")


def _maybe(text: str) -> bool:
    return any(w in text for w in _MAYBE_LITERALS) or _MAYBE_DIGITS.search(text) is not None


# per-pattern pre-checks (speed only): a text that fails one cannot match that pattern. Every
# ID/bank/phone pattern needs 4 consecutive digits, which a placeholder never adds back.
_DIGITS4 = re.compile(r"\d{4}")
_WECHAT_WORDS = re.compile("微信|威信|WeChat|wechat|VX|vx|V信|v信")
_GATES: dict[str, Callable[[str], bool]] = {
    "EMAIL": lambda t: "@" in t,
    "IP": lambda t: "IP" in t or "ip" in t or "Ip" in t,
    "WECHAT": lambda t: _WECHAT_WORDS.search(t) is not None,
    "PASSPORT": lambda t: "护照" in t,
}
_DIGIT_TYPES = frozenset({"ID_CARD", "BANK_CARD", "PHONE"})


def redact(text: str, types: set[str] | None = None) -> tuple[str, dict[str, int]]:
    """Return (redacted text, {type: count}); ``types`` limits the placeholder types."""
    counts: dict[str, int] = {}
    if not _maybe(text):
        return text, counts
    digits = None
    for typ, rx, ok in PATTERNS:
        if types is not None and typ not in types:
            continue
        if typ in _DIGIT_TYPES:
            if digits is None:
                digits = _DIGITS4.search(text) is not None
            if not digits:
                continue
        elif typ in _GATES and not _GATES[typ](text):
            continue
        placeholder = PLACEHOLDERS[typ]

        def repl(m: re.Match, typ=typ, ok=ok, placeholder=placeholder) -> str:
            v = m.group("v")
            if ok is not None and not ok(v):
                return m.group(0)
            counts[typ] = counts.get(typ, 0) + 1
            s, e = m.span("v")
            g0 = m.group(0)
            return g0[: s - m.start()] + placeholder + g0[e - m.start() :]

        text = rx.sub(repl, text)
    return text, counts


class PIIRedactor(CumedTransform):
    """Replace identifiers with typed placeholders; stats ``pii_<TYPE>`` count replacements.

    Args:
        types: the placeholder types to redact (default: all of ``PLACEHOLDERS``); e.g.
            ``["ID_CARD", "PHONE"]`` to keep e-mails of authors in papers.
    """

    name = "pii"

    def __init__(self, types: list[str] | None = None):
        super().__init__()
        unknown = set(types or ()) - set(PLACEHOLDERS)
        if unknown:
            raise ValueError(f"unknown PII types {sorted(unknown)}; choose from {', '.join(PLACEHOLDERS)}")
        self.types = set(types) if types else set(PLACEHOLDERS)

    def transform(self, text: str) -> str:
        new, counts = redact(text, self.types)
        for typ, n in counts.items():
            self.stat_update(f"pii_{typ}", value=n)
        return new

    def transform_batch(self, texts: list[str]) -> list[str]:
        """``transform`` of the texts that could hold PII (``pii_scan``: ``_maybe`` of the whole
        chunk in one compiled pass); the others, ~92 % of QA records, are returned as they are,
        as ``redact`` would return them. Same texts, same counters."""
        import numpy as np

        from curation.steps.pii_scan import maybe_pii  # numba: loaded when used

        try:
            cps = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
        except UnicodeEncodeError:  # a lone surrogate: one by one
            return [self.transform(t) for t in texts]
        lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        out = list(texts)
        for i in np.flatnonzero(maybe_pii(cps, lens)).tolist():
            out[i] = self.transform(texts[i])
        return out


def build_pii(config: dict | None = None) -> PIIRedactor:
    """``steps.pii`` of a recipe -> the step. Keys: types."""
    return PIIRedactor(**(config or {}))
