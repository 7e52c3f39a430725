"""Chinese heuristic filters: unit behaviour on tiny inline text, plus real-data false-positive checks."""

import csv
import os
from pathlib import Path

import pytest
from datatrove.data import Document

from curation.steps.filters import (
    FILTERS,
    BoilerplateFilter,
    BoilerplateLineCleaner,
    CharNGramRepetitionFilter,
    CJKRatioFilter,
    DigitRatioFilter,
    LexiconDensityFilter,
    LineRepetitionFilter,
    MinLengthFilter,
    MojibakeFilter,
    SymbolRatioFilter,
    build_filters,
)
from curation.steps.lexicon import build_lexicon

RAW = Path(os.environ.get("CUMED_RAW", Path(__file__).resolve().parents[3] / "shared" / "data" / "raw"))
needs_raw = pytest.mark.skipif(not RAW.exists(), reason=f"real data not found at {RAW}")

CLEAN = (
    "患者男，49岁，3小时前解大便后出现右下腹疼痛，右下腹可触及一包块，既往体健。"
    "查体：体温37.8℃，血压140/90mmHg，血肌酐135μmol/L，PSA 4.0ng/ml。"
    "初步诊断为急性阑尾炎，建议行腹部CT检查，并予头孢曲松抗感染治疗，必要时手术。"
)


def doc(text):
    return Document(text=text, id="t")


def keep(f, text):
    return f.filter(doc(text)) is True


def reason(f, text):
    r = f.filter(doc(text))
    assert r is not True, f"{type(f).__name__} kept {text[:40]!r}"
    return r[1]


def toyhom_docs(limit=None):
    with open(RAW / "Toyhom_Chinese_medical_dialogue/样例_内科5000-6000.csv", encoding="gb18030", newline="") as f:
        rows = list(csv.DictReader(f))[:limit]
    return [f"{r['title']}\n{r['ask']}\n{r['answer']}" for r in rows]


def test_min_length():
    f = MinLengthFilter(min_chars=20)
    assert keep(f, CLEAN)
    assert reason(f, "谢谢医生").startswith("too_short")
    assert keep(MinLengthFilter(min_chars=None), "谢谢")
    assert reason(MinLengthFilter(min_chars=None, max_chars=10), CLEAN).startswith("too_long")


def test_cjk_ratio():
    f = CJKRatioFilter()
    assert keep(f, CLEAN)
    assert reason(f, "This paper studies prostate cancer in 300 patients, 前列腺癌。").startswith("cjk_ratio")
    assert keep(CJKRatioFilter(min_ratio=None), "English only")


def test_symbol_and_digit_ratio():
    assert keep(SymbolRatioFilter(), CLEAN)
    assert reason(SymbolRatioFilter(), "★★★★★ 特价 ★★★★★ ###### 点我 ======").startswith("symbol_ratio")
    assert keep(DigitRatioFilter(), CLEAN)
    assert reason(DigitRatioFilter(), "编号 1234567 8901234 5678901 2345678 结果").startswith("digit_ratio")


def test_char_ngram_repetition():
    f = CharNGramRepetitionFilter()
    assert keep(f, CLEAN * 1)
    spam = "前列腺炎专家在线免费咨询" * 20
    assert reason(f, spam).split(":")[0].startswith(("top_", "dup_"))
    # the same paragraph pasted three times: caught by the duplicate n-gram fractions
    assert reason(CharNGramRepetitionFilter(top_n_grams=None), CLEAN * 3).startswith("dup_")
    # short texts are not judged
    assert keep(f, "高血压高血压高血压")
    assert keep(CharNGramRepetitionFilter(top_n_grams=None, dup_n_grams=None), spam)


def test_char_ngram_numpy_path_matches_python_path():
    from curation.steps.filters import repetition as R
    import numpy as np

    s = R._NON_WORD.sub("", (CLEAN + "另见：" + CLEAN[:50]) * 3)
    cp = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    for n in (5, 10, 20):
        assert R._dup_coverage_py(s, n) == R._dup_coverage_np(cp, n) > 0
    from collections import Counter

    for n in (4, 8):
        assert Counter(s[i : i + n] for i in range(len(s) - n + 1)).most_common(1)[0][1] == R._top_count_np(cp, n)


def test_line_repetition():
    f = LineRepetitionFilter()
    assert keep(f, "第一行内容\n第二行内容\n第三行内容")
    assert reason(f, "\n".join(["欢迎光临本站"] * 5 + ["正文一句"])).startswith(("dup_line", "dup_para"))
    assert reason(f, "\n\n".join(["同一段落重复出现多次的情况"] * 3 + ["另一段"])).startswith("dup_para")


def test_boilerplate():
    f = BoilerplateFilter()
    junk = "点击关注公众号\n扫码添加微信领取资料\n版权所有 © 2020\n" + "前列腺炎怎么治疗？"
    assert reason(f, junk).startswith("boilerplate")
    assert keep(f, CLEAN + "\n版权所有")  # 1 boilerplate line of 2 is not more than half
    long_line = "医生建议点击这里查看是一个错误的说法，" + CLEAN  # long prose line: never boilerplate
    assert keep(f, long_line + "\n" + long_line)
    cleaner = BoilerplateLineCleaner()
    assert cleaner.transform(CLEAN + "\n扫码关注我们\n免责声明：仅供参考") == CLEAN


def test_mojibake_catches_wrong_codecs():
    f = MojibakeFilter()
    assert keep(f, CLEAN)
    utf8_as_gbk = CLEAN.encode("utf-8").decode("gbk", errors="replace")
    assert reason(f, utf8_as_gbk).startswith("mojibake")
    # the GBK re-encoding test alone (no U+FFFD help): ignore undecodable bytes instead of replacing
    no_fffd = CLEAN.encode("utf-8").decode("gb18030", errors="ignore").replace("\ufffd", "")
    assert "utf-8 read as gbk" in reason(MojibakeFilter(max_replacement_ratio=None), no_fffd)
    assert "latin-1" in reason(f, CLEAN.encode("utf-8").decode("latin-1"))
    assert "latin-1" in reason(f, CLEAN.encode("gb18030").decode("latin-1"))
    assert reason(f, "锟斤拷锟斤拷锟斤拷" + CLEAN).startswith("mojibake")
    assert keep(f, "体温37.8°C，±2 SD，5×10^9/L，µmol/L，Müller 细胞，café。" + CLEAN)


@needs_raw
def test_mojibake_false_positive_rate_on_real_text():
    texts = toyhom_docs(3000)
    f = MojibakeFilter()
    flagged = [t for t in texts if f.filter(doc(t)) is not True]
    assert len(texts) == 3000
    assert len(flagged) / len(texts) <= 0.005, flagged[:3]


def test_lexicon_density_with_inline_terms():
    f = LexiconDensityFilter(terms=["前列腺", "高血压", "阑尾炎", "头孢曲松", "腹部CT"])
    assert keep(f, CLEAN)
    assert reason(f, "今天天气很好，我们一起去公园散步吧，然后吃个午饭再回家休息。").startswith("lexicon_density")
    assert keep(f, "好的")  # too few CJK characters to judge
    assert f.density("高血压") == 1.0
    assert keep(LexiconDensityFilter(min_density=None), "今天天气很好，我们一起去公园散步吧。")


@needs_raw
def test_lexicon_build_and_cache(tmp_path):
    terms = build_lexicon(RAW, cache_dir=tmp_path)
    assert {"前列腺炎", "高血压", "尿等待"} <= terms  # CMeKG subject, common disease, BOM'd vocab file
    assert all(2 <= len(t) <= 12 for t in terms)
    assert not any(t.startswith("\ufeff") for t in terms)
    cached = list(tmp_path.glob("medical_lexicon-*.txt"))
    assert len(cached) == 1
    assert build_lexicon(RAW, cache_dir=tmp_path) == terms


@needs_raw
def test_real_consultations_are_kept_by_default_filters(tmp_path, monkeypatch):
    monkeypatch.setenv("CUMED_CACHE", str(tmp_path))
    filters = build_filters({})
    assert list(filters) == list(FILTERS)
    texts = toyhom_docs(2000)
    kept = sum(all(f.filter(doc(t)) is True for f in filters.values()) for t in texts)
    assert kept / len(texts) >= 0.97, kept


def test_build_filters_config():
    fs = build_filters({"min_length": {"min_chars": 5}, "cjk_ratio": None, "digit_ratio": {}})
    assert list(fs) == ["min_length", "digit_ratio"] and fs["min_length"].min_chars == 5
    with pytest.raises(ValueError, match="unknown filter 'cjk'"):
        build_filters({"cjk": {}})
    with pytest.raises(ValueError, match="bad options for filter 'cjk_ratio'"):
        build_filters({"cjk_ratio": {"min": 0.3}})


def test_removed_documents_carry_reason():
    f = MinLengthFilter()
    out = list(f.run(iter([doc("谢谢"), doc(CLEAN)])))
    assert len(out) == 1
    assert f.stats["dropped_too_short"].total == 1


def test_lexicon_skips_lines_with_bad_bytes_instead_of_failing(tmp_path):
    from curation.steps.lexicon import collect_terms

    kg = tmp_path / "CMeKG_pycmekg"
    kg.mkdir()
    (kg / "cmekg_triples.tsv").write_bytes(
        "subject\tpredicate\tobject\n前列腺增生\t常见症状\t尿频\n".encode() + b"\xe8\xa1\tbad\tbytes\n"
        + "膀胱结石\t临床症状及体征\t血尿\r\n".encode())
    vocab = tmp_path / "QASystemOnMedicalGraph_39health" / "data"
    vocab.mkdir(parents=True)
    (vocab / "disease_vocab.txt").write_bytes("\ufeff肾结石\n".encode() + b"\xff\xfe\n" + "尿道炎\n".encode())
    assert collect_terms(tmp_path) == {"前列腺增生", "尿频", "膀胱结石", "血尿", "肾结石", "尿道炎"}
