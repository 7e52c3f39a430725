"""Department selection for SFT dialogues: source fields, a CMeKG lexicon, a classifier score.

Three independent methods, each a yes/no per dialogue; a dialogue is selected when any enabled
method says yes (``require: any``) or when all do (``require: all``). The build reports how many
each method selects and their overlaps (manifest ``stats.department``).

``source_field``  the source's own department labels (Toyhom ``department``, CMtMedQA ``cate1``
                  and ``cate2``) contain one of ``field_keywords`` (default for urology/andrology:
                  泌尿, 男科, 男性, 前列腺, 性功能 ...). Nephrology (肾内科) is not urology and is not
                  matched by default.
``lexicon``       a CMeKG term is found in the user turns (leftmost-longest matching;
                  ``negative_terms`` such as 血尿酸 hide the term inside them). Terms: subjects whose ``就诊科室`` is one
                  of ``departments`` (default 泌尿外科, 男科, 泌尿内科) in ``cmekg_triples.tsv`` and in
                  ``cmekg_urology_andrology_subjects.jsonl``; a subject also linked to other
                  departments is kept only when at least half of its departments are targets
                  (``支原体感染`` is 泌尿外科 *and* 妇科 *and* 呼吸科: dropped). Only the user turns
                  are searched: the patient's complaint decides the department, while doctors'
                  answers mention prostate or kidneys in passing.
``classifier``    ``metadata[classifier_field]`` (a score in [0, 1], e.g. from a department
                  classifier applied upstream) >= ``classifier_threshold``. No raw source carries
                  such a score today, so this method selects 0 dialogues until one is added.

``select: all`` keeps every department (selection is then only reported); any other preset name
or an explicit ``departments`` + ``field_keywords`` selects another department.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from curation.readers.base import lookup_lines

PRESETS: dict[str, dict] = {
    "urology_andrology": {
        "departments": ["泌尿外科", "男科", "泌尿内科"],
        "field_keywords": ["泌尿", "男科", "男性科", "男性生殖", "前列腺", "性功能", "阳痿", "早泄", "不育"],
        # longer words that contain a term but mean something else: 血尿酸 (serum uric acid) is not 血尿
        "negative_terms": ["血尿酸", "尿酸"],
    },
}
METHODS = ("source_field", "lexicon", "classifier")
KG_TRIPLES = "CMeKG_pycmekg/cmekg_triples.tsv"
KG_SUBJECTS = "CMeKG_pycmekg/cmekg_urology_andrology_subjects.jsonl"


def build_department_lexicon(raw: str | Path, departments, min_target_share: float = 0.5, min_len: int = 2) -> set[str]:
    """CMeKG subjects whose 就诊科室 are mostly ``departments`` (see the module doc)."""
    raw = Path(raw)
    targets = set(departments)
    depts: dict[str, set[str]] = {}
    path = raw / KG_TRIPLES
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the department lexicon is built from CMeKG; pass the raw data folder")
    # Both files only feed a lookup: a damaged line is skipped (the pretraining build's reader
    # reports it), it must not stop an SFT build.
    for line in lookup_lines(path):
        if "\t就诊科室\t" not in line:
            continue
        subj, _, obj = line.rstrip("\r\n").split("\t", 2)
        depts.setdefault(subj.strip(), set()).add(obj.strip())
    extra = raw / KG_SUBJECTS
    if extra.is_file():
        for line in lookup_lines(extra):
            try:
                rec = json.loads(line)
                d = set((rec.get("relations") or {}).get("就诊科室") or [])
                depts.setdefault(rec["subject"].strip(), set()).update(d)
            except (ValueError, AttributeError, KeyError, TypeError):
                continue
    terms = set()
    for subj, ds in depts.items():
        hit = ds & targets
        if hit and len(hit) >= min_target_share * len(ds) and len(subj) >= min_len:
            terms.add(subj)
    return terms


@dataclass
class DepartmentSelector:
    """Decide, per dialogue, which methods select it. See the module docstring."""

    raw: str | Path | None = None
    select: str = "urology_andrology"
    departments: list[str] | None = None
    field_keywords: list[str] | None = None
    negative_terms: list[str] | None = None
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    require: str = "any"
    classifier_field: str = "department_score"
    classifier_threshold: float = 0.5
    min_target_share: float = 0.5
    terms: set[str] | None = None

    def __post_init__(self):
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ValueError(f"unknown department method {bad[0]!r}; use {', '.join(METHODS)}")
        if self.require not in ("any", "all"):
            raise ValueError(f"department.require must be any or all, not {self.require!r}")
        self.keep_all = self.select == "all"
        preset = PRESETS.get(self.select, {})
        if not self.keep_all and not preset and not (self.departments and self.field_keywords):
            raise ValueError(
                f"unknown department preset {self.select!r}; use all, {', '.join(PRESETS)}, or give departments and field_keywords"
            )
        self.departments = list(self.departments or preset.get("departments") or [])
        self.field_keywords = list(self.field_keywords or preset.get("field_keywords") or [])
        self.negative_terms = list(self.negative_terms if self.negative_terms is not None else preset.get("negative_terms") or [])
        self._automaton = None

    def side_files(self) -> list[dict]:
        """The CMeKG files the lexicon method reads (none when it is off, the terms are given, or
        ``select: all`` names no department): the build records their sha256 in its lineage."""
        if "lexicon" not in self.methods or self.terms is not None or not self.departments:
            return []
        root = Path(self.raw or ".")
        paths = [root / KG_TRIPLES] + ([root / KG_SUBJECTS] if (root / KG_SUBJECTS).is_file() else [])
        return [{"role": "lexicon", "name": "department_lexicon", "path": p, "root": root} for p in paths]

    @property
    def label(self) -> str:
        return self.select if self.select in PRESETS or self.keep_all else "+".join(self.departments)

    def _matcher(self):
        if self._automaton is None:
            import ahocorasick

            if self.terms is None:
                if not self.departments:
                    self.terms = set()
                else:
                    self.terms = build_department_lexicon(self.raw, self.departments, self.min_target_share)
            a = ahocorasick.Automaton()
            for t in self.negative_terms:
                a.add_word(t, None)
            for t in self.terms:
                a.add_word(t, t)
            if self.terms:
                a.make_automaton()
            self._automaton = a
        return self._automaton

    def lexicon_hits(self, text: str) -> list[str]:
        a = self._matcher()
        if not self.terms:
            return []
        # leftmost-longest: a negative term (血尿酸) hides the shorter term inside it (血尿)
        return sorted({t for _, t in a.iter_long(text) if t is not None})

    def field_labels(self, meta: dict) -> list[str]:
        return [str(meta.get(k) or "") for k in ("department", "cate1", "cate2") if meta.get(k)]

    def methods_for(self, messages: list[dict], meta: dict) -> dict[str, object]:
        """{method: evidence} for each method that selects the dialogue (evidence is JSON-able)."""
        out: dict[str, object] = {}
        if "source_field" in self.methods:
            labels = [lab for lab in self.field_labels(meta) if any(k in lab for k in self.field_keywords)]
            if labels:
                out["source_field"] = sorted(set(labels))
        if "lexicon" in self.methods:
            hits = self.lexicon_hits("\n".join(m["content"] for m in messages if m["role"] == "user"))
            if hits:
                out["lexicon"] = hits[:10]
        if "classifier" in self.methods:
            score = meta.get(self.classifier_field)
            if isinstance(score, (int, float)) and score >= self.classifier_threshold:
                out["classifier"] = float(score)
        return out

    def selected(self, evidence: dict) -> bool:
        if self.keep_all:
            return True
        if self.require == "all":
            return all(m in evidence for m in self.methods)
        return bool(evidence)


def selection_stats(evidence_per_doc: list[dict], methods) -> dict:
    """Counts per method, per pairwise overlap, per exact combination, and the union."""
    per = Counter()
    combo = Counter()
    pair = Counter()
    for ev in evidence_per_doc:
        keys = [m for m in methods if m in ev]
        for k in keys:
            per[k] += 1
        for a, b in combinations(keys, 2):
            pair[f"{a}&{b}"] += 1
        combo["+".join(keys) or "none"] += 1
    return {
        "candidates": len(evidence_per_doc),
        "selected_by": {m: per.get(m, 0) for m in methods},
        "overlap": {f"{a}&{b}": pair.get(f"{a}&{b}", 0) for a, b in combinations(methods, 2)},
        "combinations": dict(sorted(combo.items())),
        "union": sum(v for k, v in combo.items() if k != "none"),
    }
