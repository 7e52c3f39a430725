from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
RECIPE = REPO / "datasets" / "cumed-sft.yaml"


@pytest.fixture(scope="session")
def sft_recipe() -> dict:
    return yaml.safe_load(RECIPE.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def source_spec(sft_recipe):
    by_name = {s["name"]: s for s in sft_recipe["sources"]}
    return lambda name: dict(by_name[name])


@pytest.fixture(scope="session")
def all_departments_build(tmp_path_factory, raw_root):
    """The real recipe with every department kept (exercises dedup/decontam/splits on ~15k dialogues)."""
    from curation.sft.build import build_conversations

    folder = tmp_path_factory.mktemp("sft_all")
    data = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    data["name"] = "sft-all"
    data["steps"]["department"] = {"select": "all"}
    recipe = folder / "sft-all.yaml"
    recipe.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return build_conversations(recipe, raw_root, folder / "store", progress=False)


@pytest.fixture(scope="session")
def default_build(tmp_path_factory, raw_root):
    from curation.sft.build import build_conversations

    folder = tmp_path_factory.mktemp("sft_default")
    return build_conversations(RECIPE, raw_root, folder / "store", progress=False)
