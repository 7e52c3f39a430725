"""The documents build's resume key and lineage cover every file its steps read besides the
sources (evaluation sets, lexicon, tokenizer, quality model) and the package versions.

A build re-run after one of them changed must start a new work folder: resuming from stage
outputs made against the old file would keep, for instance, a document that is now an
evaluation item. Each test builds a tiny recipe twice in the same work root, changes one side
input in between, and checks both the work folders and the rows.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import shutil
from pathlib import Path

import pytest
import yaml

from cumed.hashing import sha256_file
from cumed.store import Store
from cumed.store.manifest import LINEAGE_KEYS
from curation.build import build
from tests.conftest import RAW
from tests.curation.test_build import GOOD_ROWS

CMB = "DISC_MedLLM_eval/eval/samples/CMB-cases.json"
TRIPLES = "CMeKG_pycmekg/cmekg_triples.tsv"
VOCAB = "QASystemOnMedicalGraph_39health/data/disease_vocab.txt"
# Terms found in GOOD_ROWS 0 (尿路感染...) and 2 (肾功能...), none in row 1 (前列腺炎): with only
# these, row 1's medical-term density is 0 and lexicon_density removes it.
TERMS = ["尿路感染", "尿常规", "抗生素", "肾功能", "血肌酐", "尿蛋白", "高血压"]


def row_text(i: int) -> str:
    _, title, ask, answer = GOOD_ROWS[i]
    return f"{title}\n{ask}\n{answer}"


def write_raw(root: Path) -> Path:
    """One CSV source (GOOD_ROWS), a copy of the CMB-Clin evaluation set (the real file, so it can
    be changed here) and a tiny CMeKG + 39health lexicon."""
    root.mkdir(parents=True)
    header = "department,title,ask,answer\n"
    (root / "good.csv").write_text(header + "".join(",".join(r) + "\n" for r in GOOD_ROWS), encoding="utf-8")
    (root / CMB).parent.mkdir(parents=True)
    shutil.copyfile(RAW / CMB, root / CMB)
    (root / TRIPLES).parent.mkdir(parents=True)
    (root / TRIPLES).write_text("subject\tpredicate\tobject\n尿路感染\t就诊科室\t泌尿外科\n", encoding="utf-8")
    (root / VOCAB).parent.mkdir(parents=True)
    (root / VOCAB).write_text("\n".join(TERMS) + "\n", encoding="utf-8")
    return root


def write_recipe(path: Path, steps: dict, tokenizer: str | None = None) -> Path:
    recipe = {"name": "side", "kind": "documents", "shards": 2,
              "sources": [{"name": "good", "reader": "csv", "path": "good.csv", "category": "qa",
                           "options": {"template": "{title}\n{ask}\n{answer}"}}],
              "steps": steps}
    if tokenizer:
        recipe["tokenizer"] = tokenizer
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    return path


DECON = {"filters": False, "decontaminate": {"eval_sets": ["cmb_clin"]}}
LEXICON = {"filters": {"lexicon_density": {}}}


@pytest.fixture()
def side(tmp_path, monkeypatch):
    """(raw, store, run(recipe) -> (version, work folders)) with its own index and lexicon cache."""
    monkeypatch.setenv("CUMED_CACHE", str(tmp_path / "cache"))
    raw, store = write_raw(tmp_path / "raw"), Store(tmp_path / "store")

    def run(recipe: Path, store: Store = store):
        dv, _ = build(recipe, raw, store, work_root=tmp_path / "work", progress=False)
        return dv, sorted(p.name for p in (tmp_path / "work").iterdir())

    return raw, store, run


def kept_texts(dv) -> list[str]:
    return dv.to_arrow(columns=["text"]).column("text").to_pylist()


def test_an_item_added_to_an_eval_set_is_removed_on_the_rerun(side, tmp_path):
    raw, _, run = side
    recipe = write_recipe(tmp_path / "r.yaml", DECON)
    first, works = run(recipe)
    assert row_text(0) in kept_texts(first) and len(works) == 1
    items = json.loads((raw / CMB).read_text(encoding="utf-8"))
    items.append({"id": "planted", "case": GOOD_ROWS[0][2], "first_question": GOOD_ROWS[0][3]})
    (raw / CMB).write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")

    second, works = run(recipe)
    assert row_text(0) not in kept_texts(second)
    assert len(works) == 2  # a new work folder: nothing decontaminated against the old set is reused
    removed = second.to_pandas("removed")
    assert removed[removed.removed_by == "decontaminate"].reason.tolist() == ["eval_overlap: cmb_clin:planted"]
    [entry] = second.manifest["lineage"]["side_inputs"]
    assert entry == {"role": "eval_set", "name": "cmb_clin", "path": CMB, "sha256": sha256_file(raw / CMB)}
    assert first.manifest["lineage"]["side_inputs"][0]["sha256"] != entry["sha256"]


def test_a_changed_lexicon_file_gives_a_new_work_folder(side, tmp_path):
    raw, _, run = side
    recipe = write_recipe(tmp_path / "r.yaml", LEXICON)
    first, works = run(recipe)
    assert row_text(1) not in kept_texts(first) and row_text(0) in kept_texts(first)
    (raw / VOCAB).write_text("\n".join([*TERMS, "慢性前列腺炎", "前列腺炎"]) + "\n", encoding="utf-8")

    second, works = run(recipe)
    assert row_text(1) in kept_texts(second)  # the new terms were used, not the old stage outputs
    assert len(works) == 2
    entries = {e["path"]: e for e in second.manifest["lineage"]["side_inputs"]}
    assert entries[VOCAB] == {"role": "lexicon", "name": "medical_lexicon", "path": VOCAB, "sha256": sha256_file(raw / VOCAB)}
    assert entries[TRIPLES]["sha256"] == sha256_file(raw / TRIPLES)
    # the CMeKG side file counts as much as the 39health one
    (raw / TRIPLES).write_text((raw / TRIPLES).read_text(encoding="utf-8") + "高血压\t就诊科室\t心内科\n",
                               encoding="utf-8")
    _, works = run(recipe)
    assert len(works) == 3


def test_a_changed_dependency_version_gives_a_new_work_folder(side, tmp_path, monkeypatch):
    recipe = write_recipe(tmp_path / "r.yaml", DECON)
    _, _, run = side
    first, works = run(recipe)
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda d: "0.0.0+other" if d == "datatrove" else real(d))

    second, works = run(recipe, Store(tmp_path / "other-store"))  # (the same rows in one store: the same version)
    assert len(works) == 2
    assert second.content_hash == first.content_hash
    deps = first.manifest["lineage"]["dependencies"]
    assert deps["datatrove"] == real("datatrove") and deps["pyarrow"] == real("pyarrow")
    assert {"opencc", "opencc-dictionaries", "numpy"} <= set(deps)
    assert second.manifest["lineage"]["dependencies"]["datatrove"] == "0.0.0+other"


def test_a_changed_tokenizer_file_gives_a_new_work_folder(side, tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    raw, _, run = side
    tok = raw / "tok" / "tokenizer.json"
    tok.parent.mkdir()

    def save(vocab: list[str]) -> None:
        t = Tokenizer(WordLevel({w: i for i, w in enumerate(["[UNK]", *vocab])}, unk_token="[UNK]"))
        t.pre_tokenizer = Whitespace()
        t.save(str(tok))

    save(["a"])
    recipe = write_recipe(tmp_path / "r.yaml", DECON, tokenizer=str(tok))
    first, works = run(recipe)
    save(["a", "b"])
    _, works = run(recipe)
    assert len(works) == 2
    entries = {e["role"]: e for e in first.manifest["lineage"]["side_inputs"]}
    assert entries["tokenizer"]["path"] == "tok/tokenizer.json" and entries["tokenizer"]["name"] == "tokenizer.json"
    assert entries["tokenizer"]["sha256"] != sha256_file(tok)  # the first build's file, before the change
    assert first.manifest["lineage"]["dependencies"]["tokenizers"] == importlib.metadata.version("tokenizers")


def test_a_new_quality_model_gives_a_new_work_folder(side, tmp_path):
    """The quality model is in the key through ``models`` (resolved ``quality@latest`` + sha256)."""
    from annotation.quality.artifact import save_artifact
    from annotation.quality.train import train_classifier

    _, store, run = side
    good = [r[3] for r in GOOD_ROWS] * 10
    bad = ["作为一个AI语言模型，我无法提供医疗建议，请咨询专业医生。", "很抱歉，我不能回答这个问题。"] * 15

    def publish(seed: int) -> None:
        model = train_classifier([(t, "keep") for t in good] + [(t, "discard") for t in bad], tokenizer="char", seed=seed)
        save_artifact(model, store, "quality", metrics={}, threshold=0.5, target_precision=0.9, lineage={"seed": seed})

    publish(0)
    recipe = write_recipe(tmp_path / "r.yaml", {"filters": False, "quality": {"artifact": "quality@latest"}})
    first, works = run(recipe)
    assert len(works) == 1 and first.manifest["lineage"]["models"][0]["version"] == 1
    publish(1)
    second, works = run(recipe)
    assert len(works) == 2 and second.manifest["lineage"]["models"][0]["version"] == 2
    assert {"fasttext", "jieba"} <= set(first.manifest["lineage"]["dependencies"])


def test_the_code_fingerprint_covers_the_quality_filter_and_its_model_code():
    """The quality filter moved into curation: the documents build's code fingerprint (its work
    folder key) hashes the filter, the artifact loader, the model and its tokenizer."""
    import curation.quality.artifact
    import curation.quality.tokenize
    from cumed.lineage import code_files
    from curation.build.documents import CODE_PACKAGES
    from curation.steps.quality import QualityFilter

    hashed = {path.resolve() for _, path in code_files(*CODE_PACKAGES)}
    modules = [inspect.getfile(QualityFilter), curation.quality.artifact.__file__, curation.quality.tokenize.__file__,
               inspect.getfile(curation.quality.artifact.load_artifact)]
    assert {Path(m).resolve() for m in modules} <= hashed


def test_lineage_keeps_the_common_keys_first_and_adds_side_inputs_and_dependencies(side, tmp_path):
    raw, _, run = side
    recipe = write_recipe(tmp_path / "r.yaml", {**LEXICON, "decontaminate": DECON["decontaminate"]})
    dv, _ = run(recipe)
    lineage = dv.manifest["lineage"]
    assert tuple(lineage)[: len(LINEAGE_KEYS)] == LINEAGE_KEYS
    assert lineage["side_inputs"] == sorted(
        [{"role": "eval_set", "name": "cmb_clin", "path": CMB, "sha256": sha256_file(raw / CMB)},
         {"role": "lexicon", "name": "medical_lexicon", "path": TRIPLES, "sha256": sha256_file(raw / TRIPLES)},
         {"role": "lexicon", "name": "medical_lexicon", "path": VOCAB, "sha256": sha256_file(raw / VOCAB)}],
        key=lambda e: (e["role"], e["name"], e["path"]))
    assert {"datatrove", "pyarrow", "opencc", "ahocorasick", "numpy"} <= set(lineage["dependencies"])


def test_package_versions_are_those_of_the_distribution_that_installs_the_module(monkeypatch):
    """A module is asked of the distribution named like it, or ``py<module>`` (``ahocorasick`` is
    installed by ``pyahocorasick``), each only when it installs the module; any other name goes
    through ``packages_distributions`` (``dateutil`` is ``python-dateutil``); a missing one is ``not installed``."""
    from curation.build import side_inputs

    side_inputs._distributions.cache_clear()
    slow = []
    real = importlib.metadata.packages_distributions
    monkeypatch.setattr(importlib.metadata, "packages_distributions", lambda: slow.append(1) or real())
    assert side_inputs.package_version("numpy") == importlib.metadata.version("numpy")
    assert side_inputs.package_version("ahocorasick") == importlib.metadata.version("pyahocorasick")
    assert not slow  # both found by name, without reading every distribution's metadata
    assert side_inputs.package_version("yaml") == importlib.metadata.version("PyYAML") and not slow  # pyyaml
    assert side_inputs.package_version("dateutil") == importlib.metadata.version("python-dateutil") and slow
    assert side_inputs.package_version("no_such_module_here") == side_inputs.NOT_INSTALLED
    side_inputs._distributions.cache_clear()
