"""Publishing: imported rankings -> ``rankings`` version; rankings -> ``preferences`` version."""

from __future__ import annotations

from cumed.errors import CumedError
from cumed.lineage import build_lineage, config_hash
from cumed.recipes import RecipeFile, find_recipe, read_recipe
from cumed.store import DatasetVersion, Store

from annotation.ranking.importers import DISC_SOURCE_ORDER, read_disc, read_medicalgpt_reward
from annotation.ranking.pairs import build_pairs, mix_general

# What a preferences build's code fingerprint covers (pairs split by curation's near-dup clusters).
CODE_PACKAGES = ("cumed", "curation", "annotation")
IN_PROCESS = "in-process"  # lineage ``executor`` of builds that run in the calling process


def _recipe(recipe: RecipeFile | None) -> RecipeFile | None:
    """The recipe a publish follows: the one given, else the repository's datasets/cumed-rm.yaml."""
    if recipe is not None:
        return recipe
    try:
        return read_recipe(find_recipe("cumed-rm"))
    except CumedError:
        return None


def _card(recipe: RecipeFile | None, title: str, body: str) -> str:
    card = recipe.path.with_suffix(".md") if recipe is not None else None
    text = card.read_text(encoding="utf-8") if card is not None and card.is_file() else ""
    return f"# {title}\n\n{body}\n\n" + text


def import_disc(raw, store: Store, name: str = "disc-rankings", source_order: bool = False,
                doctor: str = "top", models: list[str] | None = None, order: tuple = DISC_SOURCE_ORDER,
                recipe: RecipeFile | None = None) -> tuple[DatasetVersion, dict]:
    table, report = read_disc(raw, source_order=source_order, doctor=doctor, models=models, order=tuple(order))
    opts = {"importer": "disc", "source_order": source_order, "doctor": doctor, "models": models}
    if tuple(order) != DISC_SOURCE_ORDER:
        opts["order"] = list(order)
    recipe = _recipe(recipe)
    ranking_rule = ("source order " + " > ".join(order) if source_order
                    else "total GPT-4 score, ties kept as tie groups, doctor answer " + doctor)
    dv = store.publish(
        name, table.sort_by("prompt_id"), kind="rankings",
        stats={"prompts": table.num_rows, "import": {k: v for k, v in report.items() if k != "inputs"}},
        lineage=build_lineage(recipe=recipe.lineage() if recipe else None, config_hash=config_hash(opts),
                              code_packages=CODE_PACKAGES, inputs=report["inputs"],
                              annotations=[f"import:disc-medllm-eval:{report['method']}"], executor=IN_PROCESS,
                              ranking_method=report["method"], ranking_rule=ranking_rule),
        card=_card(recipe, f"{name}: DISC-MedLLM eval rankings ({report['method']})",
                   f"{table.num_rows} prompts; ranked by {ranking_rule}. License: Apache-2.0 (DISC-MedLLM)."),
    )
    return dv, report


def import_medicalgpt(raw, store: Store, name: str = "medicalgpt-reward-rankings") -> tuple[DatasetVersion, dict]:
    table, report = read_medicalgpt_reward(raw)
    dv = store.publish(name, table.sort_by("prompt_id"), kind="rankings",
                       stats={"prompts": table.num_rows, "import": {k: v for k, v in report.items() if k != "inputs"}},
                       lineage=build_lineage(recipe=None, config_hash=config_hash({"importer": "medicalgpt-reward"}),
                                             code_packages=CODE_PACKAGES, inputs=report["inputs"],
                                             annotations=["import:medicalgpt-reward"], executor=IN_PROCESS,
                                             ranking_method="dataset_pairs"),
                       card=f"# {name}\n\nMedicalGPT reward test pairs as 2-way rankings (chosen > rejected). "
                            "License: Apache-2.0.\n")
    return dv, report


def publish_pairs(store: Store, rankings_ref: str, name: str = "cumed-rm", mode: str = "adjacent",
                  margin: str = "auto", validation: float = 0.05, test: float = 0.05, seed: str = "cumed-rm",
                  cluster_threshold: float | None = 0.6, mix_ref: str | None = None,
                  mix_ratio: float = 0.0, recipe: RecipeFile | None = None) -> tuple[DatasetVersion, dict]:
    src = store.get(rankings_ref)
    recipe = _recipe(recipe)
    if src.kind != "rankings":
        raise CumedError(f"rank pairs needs a rankings dataset; {src.ref} is {src.kind}")
    table, stats = build_pairs(src.to_arrow(), mode=mode, margin=margin, validation=validation, test=test,
                               seed=seed, cluster_threshold=cluster_threshold, origin=src.ref)
    parents = [src.ref]
    if mix_ref and mix_ratio > 0:
        general = store.get(mix_ref)
        if general.kind != "preferences":
            raise CumedError(f"--mix needs a preferences dataset; {general.ref} is {general.kind}")
        table, mix = mix_general(table, general.to_arrow(), mix_ratio, seed=seed, origin=general.ref)
        stats["mixing"] = mix
        parents.append(general.ref)
    opts = {"rankings": src.ref, "mode": mode, "margin": margin, "validation": validation, "test": test,
            "seed": seed, "cluster_threshold": cluster_threshold, "mix": mix_ref, "mix_ratio": mix_ratio}
    lineage = build_lineage(recipe=recipe.lineage() if recipe else None, config_hash=config_hash(opts),
                            code_packages=CODE_PACKAGES, parents=parents,
                            annotations=src.manifest.get("lineage", {}).get("annotations") or [], executor=IN_PROCESS,
                            options=opts, ranking_method=src.manifest.get("lineage", {}).get("ranking_method", "annotation"),
                            ranking_rule=src.manifest.get("lineage", {}).get("ranking_rule"))
    dv = store.publish(name, table, kind="preferences", stats=stats, lineage=lineage,
                       card=_card(recipe, f"{name}: reward-model preference pairs from {src.ref}",
                                  f"{table.num_rows} pairs ({mode}); splits "
                                  + ", ".join(f"{k} {v['prompts']} prompts / {v['pairs']} pairs"
                                              for k, v in stats["splits"].items())))
    return dv, stats


def build_preferences_from_disc(raw, store: Store, source_order: bool = False, doctor: str = "top",
                                rankings_name: str = "disc-rankings", name: str = "cumed-rm",
                                mode: str = "adjacent", **opts) -> tuple[str, str]:
    """DISC-MedLLM eval -> ``rankings`` version -> ``preferences`` version; returns both refs.

    ``opts`` go to ``publish_pairs`` (margin, validation, test, seed, cluster_threshold, mix_ref, mix_ratio).
    """
    rv, _ = import_disc(raw, store, name=rankings_name, source_order=source_order, doctor=doctor)
    pv, _ = publish_pairs(store, rv.ref, name=name, mode=mode, **opts)
    return rv.ref, pv.ref
