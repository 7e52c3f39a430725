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


# ---------------------------------------------------------------- issue 11: good text thrown away
# Genuine short Chinese text full of the two commonest doubled punctuation marks (破折号 ——,
# 省略号 ……) and of lab symbols. ``——`` is cp1252 97 97 (GBK 棗) and ``……`` 85 85 (GBK 厖): the
# Latin-1 mojibake signature used to read them as GB18030 read as cp1252.
GENUINE_PUNCT = [
    # a 39health disease card rendered as plain lines (the real first rows of 骨囊肿)
    "骨囊肿\n单纯性骨囊肿,孤立性骨囊肿\n骨\n好发于4——20岁，多见于5——15岁儿童\n无传染性\n医保疾病\n骨科",
    "市三甲医院约（3000 —— 8000元）\n治愈率：85%\n治疗周期：1-2个月\n前列腺炎——尿频、尿急……",
    "打完乙肝疫苗头晕无力后休克是怎么回事，是过敏吗………………医生说先观察。",
    "医生您好……我最近总是头痛——尤其是下午，吃了布洛芬也不管用……怎么办？",
    "患者血压140/90mmHg，体温38.5°C，血钾3.2±0.4mmol/L，白细胞12×10^9/L，肌酐135μmol/L——"
    "建议低盐饮食，遵医嘱按时复查……如有不适及时就诊。",
    "术后第3天——体温37.8°C，引流液约50ml……切口愈合良好·拆线后出院，嘱口服头孢呋辛0.25g×2次/日，µg级别的剂量不必担心。",
]
# texts whose mojibake must still be caught (with their ——/…… and a 经 = GBK BE AD, whose AD byte
# is U+00AD, the soft hyphen that normalisation deletes)
MOJIBAKE_SOURCES = GENUINE_PUNCT[2:] + [CLEAN, "经常头疼，医生说是高血压——要吃药……", "患者经过治疗后症状缓解，继续观察。"]
MOJIBAKE_CODECS = {
    "utf8_as_cp1252_replace": lambda s: s.encode("utf-8").decode("cp1252", errors="replace"),
    "utf8_as_cp1252_ignore": lambda s: s.encode("utf-8").decode("cp1252", errors="ignore"),
    "utf8_as_latin1": lambda s: s.encode("utf-8").decode("latin-1"),
    "gb18030_as_latin1": lambda s: s.encode("gb18030").decode("latin-1"),
    "gb18030_as_cp1252_replace": lambda s: s.encode("gb18030").decode("cp1252", errors="replace"),
    "gb18030_as_cp1252_ignore": lambda s: s.encode("gb18030").decode("cp1252", errors="ignore"),
    "utf8_as_gbk_replace": lambda s: s.encode("utf-8").decode("gbk", errors="replace"),
    "utf8_as_gb18030_replace": lambda s: s.encode("utf-8").decode("gb18030", errors="replace"),
}


def _normalized(text):
    from curation.steps.normalize import Normalize

    return Normalize().transform(text)  # the filters see normalised text in the pipeline


@pytest.mark.parametrize("text", GENUINE_PUNCT)
def test_mojibake_keeps_genuine_dashes_ellipses_and_lab_symbols(text):
    f = MojibakeFilter()
    assert keep(f, text)
    assert keep(f, _normalized(text))


@pytest.mark.parametrize("text", GENUINE_PUNCT)
def test_genuine_short_text_with_dashes_and_ellipses_passes_every_default_filter(text):
    # every default filter but the lexicon one (needs the raw data: see the real-data test below)
    filters = build_filters({name: {} for name in FILTERS if name != "lexicon_density"})
    t = _normalized(text)
    removed = {n: f.filter(doc(t)) for n, f in filters.items()}
    assert all(r is True for r in removed.values()), {n: r for n, r in removed.items() if r is not True}


@pytest.mark.parametrize("codec", sorted(MOJIBAKE_CODECS))
def test_mojibake_still_removes_real_mojibake(codec):
    f = MojibakeFilter()
    for text in MOJIBAKE_SOURCES:
        bad = _normalized(MOJIBAKE_CODECS[codec](text))
        assert bad != text
        assert reason(f, bad).startswith("mojibake"), (codec, text)


def test_latin1_signature_judges_runs_not_characters():
    from curation.steps.filters.mojibake import _latin1_mojibake_chars

    # one punctuation mark doubled, symbol pairs, cp1252 quotes: genuine (a pair of Latin-1
    # letters such as the öß of Größe does count: 2 characters, far below 2 % of a document)
    for s in ("——", "……", "····", "××", "m²·s", "°±", "”“", "——……"):
        assert _latin1_mojibake_chars(s) == 0, s
    # two Chinese characters through GB18030 -> Latin-1 are Latin-1 letters: mojibake
    assert _latin1_mojibake_chars("中文".encode("gb18030").decode("latin-1")) == 4
    assert _latin1_mojibake_chars("病".encode("gb18030").decode("latin-1") + "人") == 0  # ²¡ alone: too short to tell
    assert _latin1_mojibake_chars("病人".encode("gb18030").decode("latin-1")) == 4


@needs_raw
def test_disease_cards_as_plain_lines_are_not_mojibake():
    # the corpus: every 39health card as its column values, one per line (1,777 were removed)
    with open(RAW / "QASystemOnMedicalGraph_39health/data/disease.csv", encoding="gb18030", newline="") as f:
        rows = list(csv.DictReader(f))
    texts = ["\n".join(v.strip() for k, v in r.items() if k and v and v.strip()) for r in rows]
    assert sum("——" in t for t in texts) > 1_000
    f = MojibakeFilter()
    flagged = [t for t in texts if f.filter(doc(t)) is not True]
    assert flagged == []


@needs_raw
def test_genuine_short_texts_pass_the_real_default_filters(tmp_path, monkeypatch):
    monkeypatch.setenv("CUMED_CACHE", str(tmp_path))
    filters = build_filters({})
    for text in GENUINE_PUNCT:
        t = _normalized(text)
        assert all(f.filter(doc(t)) is True for f in filters.values()), text


def test_symbol_ratio_counts_a_chinese_ellipsis_once():
    from curation.steps.filters._text import features

    assert features("好的……").symbol == 1
    assert features("好的…").symbol == 1
    assert features("好的………………").symbol == 3  # three 省略号 written together
    assert features("第一章……………………………………………………12").symbol == 10  # dot leaders still count
    assert features("#★…").symbol == 3
    # 4 "…" in 33 characters was 0.12 > 0.10: the text is two ellipses, not four symbols
    assert keep(SymbolRatioFilter(), "医生您好……我最近总是头痛——尤其是下午，吃了布洛芬也不管用……怎么办？")
    assert reason(SymbolRatioFilter(), "★★★★★ 特价 ★★★★★ ###### 点我 ======").startswith("symbol_ratio")


# ---------------------------------------------------------------- prose lines (papers)
ABSTRACT_EN = (
    "Objective To investigate the long-term efficacy of interventional therapy and conservative treatment "
    "of acute myocardial infarction. Methods A total of 100 patients were retrospectively grouped. "
    "Results The one-year survival rate of the intervention group was significantly higher (P<0.05). "
    "Conclusion Interventional therapy improves the survival rate and cardiac function of patients."
)
PROSE_ZH = [
    "急性心肌梗死为冠状动脉持续缺血缺氧导致心肌坏死，患者可伴随血清心肌酶活性升高和心电图进行性变化。",
    "选取2013年8月～2015年8月我院急性心肌梗死患者100例进行回顾性分组研究，经医院伦理委员会批准。",
    "保守组采取保守治疗，介入组采取介入治疗，术前给予氯吡格雷口服，根据造影结果行冠脉内支架植入术。",
    "介入组前壁心肌梗死1年生存率明显高于保守组，心脏事件发生率、再住院率显著低于保守组。",
    "早期再灌注治疗可限制心肌梗死范围，降低心肌坏死率；晚期再灌注治疗可促进存活心肌功能的恢复。",
    "所有患者给予钙离子拮抗剂、调脂药物、阿司匹林、硝酸酯类等药物治疗，治疗期间监测肝肾功能。",
    "比较两组患者前壁和下壁心肌梗死的生存率、心脏事件发生率、再住院率以及治疗前后心功能分级。",
    "数据采用统计软件处理，计数资料用百分比表示，行卡方检验，计量资料行t检验。",
    "心肌梗死患者可伴随持久剧烈胸骨后疼痛，经休息或含服硝酸甘油无法有效缓解，威胁生命安全。",
    "左室重构为影响心肌梗死患者预后的主要因素，梗死面积越大，心肌受损越严重。",
    "下壁心肌梗死因受到膈肌保护，对心功能影响较小，心室重构也不明显。",
]
TABLE_ROWS = [
    "组别 时期 前壁心肌梗死 下壁心肌梗死",
    "介入组 治疗前 3.89±1.31 3.85±1.23",
    "治疗后3年 2.19±0.71** 2.21±0.59**",
    "保守组 治疗前 3.87±1.32 3.86±1.25",
    "治疗后3年 3.03±0.42# 3.11±0.94*",
    "| 组别 | 例数 | 有效 |",
    "介入组\t50\t48(96.00)",
]


def test_prose_lines_sets_tables_numbers_references_and_english_aside():
    from curation.steps.filters._text import prose_lines

    text = "\n".join(["临床研究", PROSE_ZH[0], ABSTRACT_EN, *TABLE_ROWS, *PROSE_ZH[1:], "参考文献",
                      "[1] 王某, 李某. 急性心肌梗死的介入治疗[J]. 中华心血管病杂志, 2010, 31(2): 100-103."])
    prose = prose_lines(text)
    assert PROSE_ZH[0] in prose and ABSTRACT_EN in prose and "临床研究" in prose
    assert "3.89±1.31" not in prose and "| 组别 |" not in prose and "\t50" not in prose
    assert "组别 时期 前壁心肌梗死" in prose  # a header of words is text
    assert "参考文献" not in prose and "王某" not in prose
    zh = prose_lines(text, chinese=True)
    assert ABSTRACT_EN not in zh and PROSE_ZH[-1] in zh
    # a references title early in a text is a table of contents, not the list
    early = "参考文献\n" + "\n".join(PROSE_ZH)
    assert prose_lines(early) is early
    # all prose: the very same object (the filters' cached counts are reused)
    assert prose_lines(CLEAN) is CLEAN
    only = "\n".join(PROSE_ZH)
    assert prose_lines(only) is only and prose_lines(only, chinese=True) is only


def _paper(n_table=12, n_abstract=1):
    rows = [TABLE_ROWS[1 + i % 4] for i in range(n_table)]
    return "\n".join(["临床研究", *PROSE_ZH[:2], *([ABSTRACT_EN] * n_abstract), *rows, *PROSE_ZH[2:]])


def test_cjk_ratio_judges_a_paper_on_its_prose():
    paper = _paper(n_table=40, n_abstract=2)  # whole text 0.29, prose 0.37, like the real ones
    assert reason(CJKRatioFilter(prose=False), paper).startswith("cjk_ratio")  # the old verdict
    assert keep(CJKRatioFilter(), paper)
    # an English paper with a Chinese title is still not Chinese text
    english = "前列腺癌的临床研究\n" + "\n".join([ABSTRACT_EN] * 4)
    assert reason(CJKRatioFilter(), english).startswith("cjk_ratio")
    # a document that is mostly table is judged whole
    mostly_table = "\n".join([PROSE_ZH[0], *[TABLE_ROWS[1]] * 30])
    assert reason(CJKRatioFilter(), mostly_table).startswith("cjk_ratio")


def test_char_repetition_judges_a_paper_on_its_chinese_prose():
    rows = "\n".join(f"第{i}组 {i}.89±1.31 {i}.85±1.23 {i}.87±1.32 {i}.86±1.25 P<0.05 P<0.05" for i in range(8))
    paper = "\n".join(PROSE_ZH + [rows, ABSTRACT_EN, ABSTRACT_EN.replace("Objective", "Aim")])
    assert reason(CharNGramRepetitionFilter(prose=False), paper).startswith("dup_")  # the old verdict
    assert keep(CharNGramRepetitionFilter(), paper)
    # repeated Chinese prose is repetition whatever tables surround it
    spam = "\n".join(PROSE_ZH * 3 + [rows])
    assert reason(CharNGramRepetitionFilter(), spam).startswith("dup_")
    # a prose too short to be judged (< min_chars) clears nothing: this card repeats 暂无相关资料
    card = ("急性输卵管卵巢炎\n卵巢\n25-35岁女性\n无传染性\n非医保疾病\n妇科\n白细胞分类计数 血沉方程K值 性激素六项 [详细]\n"
            "乏力 食欲不振 下腹疼痛 腹胀 颜面潮红 [详细]\n暂无相关资料\n暂无相关资料\n>> 应该如何用药？用什么药？ [详细]\n"
            "暂无相关资料\n暂无相关资料")
    assert reason(CharNGramRepetitionFilter(), card).startswith("top_6_gram")
    # repeated rows behind a one-line preface: judged whole (prose share under min_prose_share)
    table_spam = "\n".join([PROSE_ZH[0]] + ["介入组 前壁 24(96.00)* 6(24.00)* 5(20.00)* 治疗有效 治疗有效"] * 40)
    assert reason(CharNGramRepetitionFilter(), table_spam).split(":")[0].startswith(("dup_", "top_"))


@needs_raw
def test_chinaxiv_papers_survive_the_default_filters(tmp_path, monkeypatch):
    # acceptance of issue 11: >= 98 % of the ChinaXiv papers pass every default filter (the old
    # char_repetition/cjk_ratio removed 53 of 765: tables of numbers, English abstracts)
    from curation.readers import make_reader
    from curation.steps.normalize import Normalize
    from curation.steps.pii import PIIRedactor

    monkeypatch.setenv("CUMED_CACHE", str(tmp_path))
    src = {"name": "chinaxiv_medical", "reader": "markdown", "path": "ChinaXiv_medical/*/*.md", "category": "textbook",
           "options": {"index": "chinaxiv_medical_index.jsonl", "math": "text"}}
    norm, pii = Normalize(), PIIRedactor()
    texts = [pii.transform(norm.transform(d.text)) for d in make_reader(src, str(RAW)).run()]
    assert len(texts) == 765
    filters = build_filters({})
    removed = [t[:40] for t in texts if not all(f.filter(doc(t)) is True for f in filters.values())]
    assert len(removed) <= 0.02 * len(texts), removed


# Texts that take every branch of the batch paths (``filter_batch``, ``features_batch``): empty,
# whitespace only, astral characters (SIP ideographs, emoji, plane-14 tags: not letters, left out
# of the n-grams), a lone surrogate (no code points: regex fallback), a LaTeX backslash,
# texts over BATCH_MAX_CHARS / _NUMPY_FROM, repeated lines, spam, boilerplate and mojibake.
EDGE_TEXTS = [
    "", " ", "\n\n \t\n", "好", "高血", "高血压", "\U00020000\U00020001\U00020002" * 40, "😀" * 120,
    "头痛" + "\U000e0041\U000e0042\U000e0043" * 50 + CLEAN, "\ud800" + CLEAN, CLEAN + "\\frac{a}{b} " * 5,
    CLEAN * 40, "前列腺炎专家在线免费咨询" * 400, "前列腺炎专家在线免费咨询" * 20, CLEAN + "\n" + CLEAN,
    "问题一\n  问题一  \n", "点击关注公众号\n扫码添加微信领取资料\n版权所有 © 2020\n前列腺炎怎么治疗？",
    CLEAN.encode("utf-8").decode("latin-1"), CLEAN.encode("utf-8").decode("gbk", errors="replace"),
    "ab\ncd\n\nab\ncd", "病" * 99, "病" * 100, "(c) 2020 Copyright\n" * 3, CLEAN[:80] + "糖尿病" * 8,
]


def _batch_vs_filter(filters, texts):
    from curation.steps.filters import _text

    docs = [doc(t) for t in texts]
    for name, f in filters.items():
        _text.clear_cache()
        batch = [r for k in range(0, len(docs), 256) for r in f.filter_batch(docs[k : k + 256])]
        _text.clear_cache()
        assert batch == [f.filter(d) for d in docs], name


def test_filter_batch_matches_filter_on_edge_cases():
    import random

    texts = EDGE_TEXTS + [t.replace("。", "。\n") for t in EDGE_TEXTS] + [CLEAN, _paper(), _paper(40, 2)]
    random.Random(0).shuffle(texts)
    filters = build_filters({name: {} for name in FILTERS if name != "lexicon_density"})
    filters["lexicon_density"] = LexiconDensityFilter(terms=["前列腺", "高血压", "阑尾炎", "头孢曲松"])
    filters["char_repetition_no_prose"] = CharNGramRepetitionFilter(prose=False, min_chars=None)
    filters["char_repetition_top2"] = CharNGramRepetitionFilter(top_n_grams=((2, 0.3), (6, 0.1)),
                                                                dup_n_grams=((2, 0.1),))
    # thresholds below 0 remove texts none of the chunk tests would suspect otherwise
    filters["mojibake_below_0"] = MojibakeFilter(max_replacement_ratio=-0.1, max_gbk_utf8_share=None,
                                                 max_latin1_ratio=None)
    filters["mojibake_latin_below_0"] = MojibakeFilter(max_replacement_ratio=None, max_latin1_ratio=-0.1)
    filters["symbol_ratio_below_0"] = SymbolRatioFilter(max_ratio=-0.1)
    filters["min_length_max"] = MinLengthFilter(min_chars=None, max_chars=30)
    _batch_vs_filter(filters, texts)
    _batch_vs_filter(filters, texts[:1] * 3)  # one text: no batch arrays


def _covered_by_repeated(s: str, n0: int) -> int:
    """Characters of ``s`` inside an ``n0``-character window whose 3-grams all occurred earlier."""
    seen, dup = set(), []
    for i in range(len(s) - 2):
        dup.append(s[i:i + 3] in seen)
        seen.add(s[i:i + 3])
    hit = set()
    for i in range(len(s) - n0 + 1):
        if all(dup[i:i + n0 - 2]):
            hit.update(range(i, i + n0))
    return len(hit)


def test_compiled_ngram_counts_are_the_plain_python_counts():
    """``_ngram_counts`` (numba) against the definitions, on texts laid end to end as the
    repetition filter passes them: code points up to U+10FFFF (21 bits, the 3-gram key's limit),
    tiny alphabets (many repeats, long probe chains), texts of 3 characters."""
    from collections import Counter

    import numpy as np

    from curation.steps.filters._ngram_counts import top_counts, trigram_bounds

    rng = np.random.default_rng(0)
    points = np.array([0x4E00, 0x75C5, 0x10FFFF, 0x30000, 0x61, 0x62, 0x4E01])
    most = 0
    for trial in range(60):
        alphabet = points[: 2 + trial % 6]
        lens = rng.integers(3, 160, size=1 + trial % 9)
        c = rng.choice(alphabet, size=int(lens.sum())).astype(np.uint32)
        ends = np.cumsum(lens)
        starts = ends - lens
        texts = ["".join(map(chr, c[a:b])) for a, b in zip(starts, ends)]
        top, covered = trigram_bounds(c, starts, ends, 8)
        assert top.tolist() == [Counter(t[i:i + 3] for i in range(len(t) - 2)).most_common(1)[0][1] for t in texts]
        assert covered.tolist() == [_covered_by_repeated(t, 10) for t in texts]
        most = max(most, int(covered.max()))
        ns = (2, 4, 6, 8)
        exact = [[Counter(t[i:i + n] for i in range(len(t) - n + 1)).most_common(1)[0][1] if len(t) >= n else 0
                  for n in ns] for t in texts]
        assert top_counts(c, starts, ends, ns).tolist() == exact
    assert most > 0  # the coverage was exercised


def test_features_batch_matches_features():
    from curation.steps.filters import _text

    texts = EDGE_TEXTS + [CLEAN]
    batch = _text.features_batch(texts)
    _text.clear_cache()
    for t, b in zip(texts, batch):
        one = _text.Features(t)
        for k in ("visible", "cjk", "digit", "symbol", "bad", "latin", "alnum", "gblead_chars"):
            assert getattr(b, k) == getattr(one, k), (k, t[:20])
        assert (b.cp is None) == (one.cp is None)
        assert b.cp is None or ((b.cp == one.cp).all() and (b.flags == one.flags).all())


def test_shortcuts_keep_the_decisions_of_the_full_tests():
    from curation.steps.filters.boilerplate import _BOILER_RE, may_match

    texts = EDGE_TEXTS + [t.replace("。", "。\n") for t in EDGE_TEXTS] + (toyhom_docs(300) if RAW.exists() else [])
    assert all(may_match(t) for t in texts if _BOILER_RE.search(t))
    lines, full = LineRepetitionFilter(), LineRepetitionFilter()
    full._distinct_lines_pass = False  # the two regex splits on every document
    assert [lines.filter(doc(t)) for t in texts] == [full.filter(doc(t)) for t in texts]


def test_compiled_line_repeats_are_the_python_line_sets():
    """``_line_repeats`` (numba) against the definition it shortcuts, on texts drawn from a few
    lines that differ only in whitespace (ASCII, ideographic, CR, tab) or not at all, blank lines,
    empty texts and texts without a newline: "repeated" is exactly "two equal stripped non-blank
    lines", and the filter's decisions are those of ``verdict`` on every text."""
    import random

    from curation.steps.filters import _text
    from curation.steps.filters._line_repeats import repeated_lines

    rng = random.Random(0)
    parts = ["前列腺炎怎么治疗？", " 前列腺炎怎么治疗？\r", "\u3000前列腺炎怎么治疗？\t", "前列腺炎怎么治疗", "",
             "  ", "\u3000", "建议查血常规。", "建议查血常规。 ", "a", "b"]
    texts = ["", "\n", "a", "a\n", "\na\n\na"] + ["\n".join(rng.choice(parts) for _ in range(rng.randint(1, 9)))
                                            for _ in range(400)]
    cf = _text.chunk_features(texts)
    got = repeated_lines(cf.cp, cf.flags, cf.starts, cf.ends, _text.WS).tolist()
    want = [len(set(lines)) < len(lines) for lines in ([x for x in (ln.strip() for ln in t.split("\n")) if x]
                                                       for t in texts)]
    assert got == want
    assert 50 < sum(want) < 350  # both kinds, plenty of each
    f = LineRepetitionFilter()
    assert f.filter_texts(texts) == [f.verdict(t) for t in texts]
    assert any(r is not True for r in f.filter_texts(texts))  # removals among them


def test_compiled_anchor_search_is_may_match():
    """``_anchors`` (numba) finds an anchor exactly where ``may_match``'s regex does: on texts built
    from the anchors, their halves and their neighbours, with a lone surrogate among them (searched
    by the regex)."""
    import random

    from curation.steps.filters import _text
    import numpy as np

    from curation.steps.filters._anchors import holding_anchor
    from curation.steps.filters.boilerplate import _ANCHOR_CHARS, _ANCHOR_PAIRS, _anchor_tables, may_match

    r = random.Random(2)
    parts = [*_ANCHOR_CHARS, *_ANCHOR_PAIRS, *(p[0] for p in _ANCHOR_PAIRS), *(p[1] for p in _ANCHOR_PAIRS),
             "前列腺", " ", "\n", "C", "y", "(", "ICP"]
    texts = ["".join(r.choice(parts) for _ in range(r.randint(0, 4))) for _ in range(3000)] + ["\ud800点击"]
    cf = _text.chunk_features(texts)
    ok = np.flatnonzero(cf.readable)
    got = holding_anchor(cf.cp, cf.starts[ok], cf.ends[ok], _anchor_tables()).tolist()
    assert got == [may_match(texts[i]) for i in ok.tolist()]
    assert 300 < sum(got) < len(got) - 300
    f = BoilerplateFilter(max_line_frac=-1)  # every text holding a pattern match is removed
    assert f.filter_texts(texts) == [f.verdict(t) for t in texts]
    assert sum(x is not True for x in f.filter_texts(texts)) > 100


@needs_raw
def test_filter_batch_matches_filter_on_real_text(tmp_path, monkeypatch):
    monkeypatch.setenv("CUMED_CACHE", str(tmp_path))
    texts = toyhom_docs(3000)
    assert len(texts) == 3000
    _batch_vs_filter(build_filters({}), texts)


def _iter_long_sums(matcher, texts: list[str]) -> tuple[list[int], list[int]]:
    """(pyahocorasick's ``iter_long`` value sums, the compiled automaton's) for these texts."""
    import numpy as np

    cps = [np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32) for t in texts]
    lens = np.array([len(c) for c in cps], dtype=np.int64)
    ends = np.cumsum(lens)
    got = matcher.compiled.covered(np.concatenate(cps), ends - lens, ends, np.full(len(texts), np.inf))
    return [matcher.matched_chars(t) for t in texts], got.tolist()


def test_compiled_automaton_walks_as_iter_long_does():
    """``aho_corasick.CompiledAutomaton`` transcribes ``iter_long``'s quirks (restart after a
    match, failure links after a dead end, the one remembered fail-over node): on texts and term
    sets over 3-4 letters, where every quirk occurs many times, every sum is pyahocorasick's."""
    import random

    from curation.steps.lexicon import LexiconMatcher

    rng = random.Random(0)
    for trial in range(40):
        alphabet = "病痛血尿"[: 3 + trial % 2]
        terms = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(rng.randint(1, 25))}
        matcher = LexiconMatcher(sorted(terms))
        texts = ["".join(rng.choice(alphabet + "，") for _ in range(rng.randint(0, 60))) for _ in range(30)]
        want, got = _iter_long_sums(matcher, texts)
        assert got == want, (trial, sorted(terms))


@needs_raw
def test_compiled_automaton_matches_iter_long_on_real_consultations(tmp_path, monkeypatch):
    """The shipped lexicon (128k terms, the frequent characters' zero-length entries) on 2,000 real
    consultations: the same covered characters, and the filter's batch and per-document
    decisions agree."""
    from curation.steps.filters import lexicon_density

    monkeypatch.setenv("CUMED_CACHE", str(tmp_path))
    monkeypatch.setattr(lexicon_density, "_MATCHERS", {})  # as a new process: no automaton built yet
    f = build_filters({})["lexicon_density"]
    texts = toyhom_docs(2000)
    want, got = _iter_long_sums(f.matcher, texts)
    assert got == want and sum(want) > 100_000
    docs = [doc(t) for t in texts]
    assert f.filter_batch(docs) == [f.filter(d) for d in docs]
    # The compiled automaton was written to the cache: a new process (a task, the next build)
    # reads it instead of building pyahocorasick's and compiling it, and walks the same.
    (cached,) = tmp_path.rglob("aho-*.npz")
    monkeypatch.setattr(lexicon_density, "_MATCHERS", {})
    again = build_filters({})["lexicon_density"]
    assert again.matcher is not f.matcher and again.matcher.cache == cached
    docs = [doc(t) for t in texts]
    assert again.filter_batch(docs) == f.filter_batch(docs)
    assert again.matcher._automaton is None  # never built: the batch walked the cached automaton
    assert _iter_long_sums(again.matcher, texts) == (want, got)
    # a damaged cache file is built again and replaced, never an error nor other matches
    cached.write_bytes(b"PK\x03\x04 not an npz")
    monkeypatch.setattr(lexicon_density, "_MATCHERS", {})
    third = build_filters({})["lexicon_density"]
    assert _iter_long_sums(third.matcher, texts) == (want, got)
    import numpy as np

    assert np.load(cached)["packed"].shape == f.matcher.compiled.tables[0].shape


def test_a_cached_automaton_is_named_by_its_terms():
    """Two term sets, two cache files; the same terms, the same file (the name also covers the
    code that builds the automaton, so a changed builder never reads an old one)."""
    import hashlib

    from curation.steps.lexicon import cache_name

    key = lambda terms: hashlib.sha256("\n".join(sorted(terms)).encode()).hexdigest()  # noqa: E731
    assert cache_name(key(["前列腺", "膀胱"])) == cache_name(key(["膀胱", "前列腺"]))
    assert cache_name(key(["前列腺", "膀胱"])) != cache_name(key(["前列腺", "肾"]))
