"""Medical term lexicon (CMeKG + 39health vocabularies) and a fast matcher for lexicon density.

``build_lexicon(raw_dir)`` collects terms from
- CMeKG ``cmekg_triples.tsv``: every subject, and the objects of medical predicates
  (``MEDICAL_PREDICATES``: symptoms, drugs, ingredients, departments, checks...; not English
  names, dosage text, storage, taxonomy), kept when 2..12 characters long and mostly CJK;
- 39health ``disease/alias/symptom/complications_vocab.txt`` (a BOM in one file is stripped).
The set is cached as one term per line under ``$CUMED_CACHE`` (default ``~/.cache/cumed``),
keyed by the sizes and mtimes of the inputs, so rebuilding after a data change is automatic.

``LexiconMatcher`` wraps a pyahocorasick automaton (installed with datatrove) and reports
``matched_chars(text)``: characters covered by the leftmost-longest, non-overlapping matches.

Deliberately not a tokenizer or an entity linker: density is a relevance signal, not an
annotation.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

MEDICAL_PREDICATES = frozenset(
    """不良反应 成份 常见症状 适应症 相关药物 主治 功能主治 相关疾病 常见病因 相关症状 别称 检查 并发症
    就诊科室 禁忌 商品名 通用名 临床症状及体征 治疗 常见发病部位 病因 多发群体 药物治疗 高危因素
    实验室检查 上位关系 下位关系 入药部位 所属分类 组成 功效 性味 药物相互作用 用途分类 分类
    辅助检查 手术治疗 其他治疗 影像学检查 发病部位 传播途径 预防 鉴别诊断 病理分型 归经""".split()
)
_CJK = re.compile(r"[\u3400-\u9fff]")
_MIN_LEN, _MAX_LEN = 2, 12


def default_cache_dir() -> Path:
    return Path(os.environ.get("CUMED_CACHE") or Path.home() / ".cache" / "cumed")


def _ok(term: str) -> bool:
    term = term.strip()
    return _MIN_LEN <= len(term) <= _MAX_LEN and len(_CJK.findall(term)) * 2 >= len(term)


def _inputs(raw_dir: Path) -> list[Path]:
    paths = [raw_dir / "CMeKG_pycmekg" / "cmekg_triples.tsv"]
    paths += sorted((raw_dir / "QASystemOnMedicalGraph_39health" / "data").glob("*_vocab.txt"))
    missing = [str(p) for p in paths if not p.exists()]
    if missing or len(paths) < 2:
        raise FileNotFoundError(
            f"lexicon inputs not found under {raw_dir}: {missing or 'no *_vocab.txt'}; "
            "pass raw_dir= the folder holding CMeKG_pycmekg/ and QASystemOnMedicalGraph_39health/"
        )
    return paths


def collect_terms(raw_dir: str | Path) -> set[str]:
    """Read the raw sources and return the term set (no cache)."""
    raw_dir = Path(raw_dir)
    cmekg, *vocabs = _inputs(raw_dir)
    terms: set[str] = set()
    with open(cmekg, encoding="utf-8") as f:
        next(f, None)  # header: subject predicate object
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            subj, pred, obj = parts
            if _ok(subj):
                terms.add(subj.strip())
            if pred in MEDICAL_PREDICATES and _ok(obj):
                terms.add(obj.strip())
    for p in vocabs:
        for line in p.read_text(encoding="utf-8-sig").splitlines():
            if _ok(line):
                terms.add(line.strip())
    return terms


def build_lexicon(raw_dir: str | Path, cache_dir: str | Path | None = None) -> set[str]:
    """The term set, from the on-disk cache when the inputs are unchanged."""
    paths = _inputs(Path(raw_dir))
    key = hashlib.sha1(
        "|".join(f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in paths).encode()
        + f"{sorted(MEDICAL_PREDICATES)}{_MIN_LEN}{_MAX_LEN}".encode()
    ).hexdigest()[:16]
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache / f"medical_lexicon-{key}.txt"
    if path.exists():
        return set(path.read_text(encoding="utf-8").split("\n")) - {""}
    terms = collect_terms(raw_dir)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(sorted(terms)), encoding="utf-8")
    tmp.replace(path)  # atomic: parallel workers never read a half-written cache
    return terms


class LexiconMatcher:
    """Aho-Corasick over a term set; ``matched_chars`` counts characters covered by terms."""

    def __init__(self, terms):
        try:
            import ahocorasick
        except ImportError as e:  # pragma: no cover - shipped with datatrove
            raise ImportError("lexicon density needs pyahocorasick: pip install pyahocorasick") from e
        self.automaton = ahocorasick.Automaton()
        n = 0
        for t in terms:
            self.automaton.add_word(t, len(t))
            n += 1
        if not n:
            raise ValueError("empty lexicon: no terms to match")
        self.automaton.make_automaton()
        self.size = n

    def matched_chars(self, text: str) -> int:
        """Characters covered by leftmost-longest non-overlapping matches."""
        return sum(length for _, length in self.automaton.iter_long(text))

    def __reduce__(self):  # rebuild from terms in worker processes (automaton pickles are large)
        return (LexiconMatcher, (list(self.automaton.keys()),))
