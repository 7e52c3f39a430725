"""A ``kind: preferences`` recipe (``datasets/cumed-rm.yaml``) built by ``cumed build``.

    rankings:  where the rankings come from: ``importer: disc`` (DISC-MedLLM's evaluation under
               ``--raw``: method, doctor, source_order) or ``ref: NAME@N`` (a rankings dataset
               already in the store, e.g. annotated ``cumed-rm-rankings@3``)
    pairs:     how rankings become (chosen, rejected) pairs: mode, margin, splits, mix
    task:      how ``cumed rank push`` shows rankings to annotators (k, ties, ratings); read by
               the queue, validated here so a typo fails before anyone annotates

The build is the same two publishes as ``cumed rank import-disc`` then ``cumed rank pairs``, so
both roads give the same content hash.
"""

from __future__ import annotations

from pathlib import Path

from cumed.errors import CumedError
from cumed.recipes import RecipeFile, read_recipe
from cumed.store import DatasetVersion, Store

from annotation.ranking.build import import_disc, publish_pairs
from annotation.ranking.importers import DISC_SOURCE_ORDER

TOP_KEYS = {"name", "kind", "description", "card", "rankings", "pairs", "task"}
RANKINGS_KEYS = {"name", "importer", "ref", "method", "doctor", "source_order", "license"}
PAIRS_KEYS = {"mode", "margin", "splits", "mix"}
SPLITS_KEYS = {"validation", "test", "seed", "cluster_threshold"}
MIX_KEYS = {"ref", "ratio"}
TASK_KEYS = {"k", "ties", "ratings"}
METHODS = ("gpt4_score", "source_order")


def _section(recipe: RecipeFile, data: dict, key: str, allowed: set, where: str = "") -> dict:
    value = data.get(key) or {}
    place = f"{where}{key}"
    if not isinstance(value, dict):
        raise CumedError(f"{recipe.path}: {place} must be a mapping; allowed keys: {', '.join(sorted(allowed))}")
    unknown = set(value) - allowed
    if unknown:
        raise CumedError(f"unknown key(s) {', '.join(sorted(unknown))} in {place} of recipe {recipe.path}; "
                         f"allowed: {', '.join(sorted(allowed))}")
    return value


def check_preferences_recipe(recipe: RecipeFile) -> dict:
    """The recipe's options, validated; errors name the file, the key and the allowed values."""
    data = recipe.data
    if recipe.kind != "preferences":
        raise CumedError(f"{recipe.path} is kind {recipe.kind!r}; a preferences build needs kind: preferences")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise CumedError(f"unknown key(s) {', '.join(sorted(unknown))} in recipe {recipe.path}; "
                         f"allowed: {', '.join(sorted(TOP_KEYS))}")
    if not recipe.name:
        raise CumedError(f"recipe {recipe.path} lacks 'name'")
    rankings = _section(recipe, data, "rankings", RANKINGS_KEYS)
    pairs = _section(recipe, data, "pairs", PAIRS_KEYS)
    splits = _section(recipe, pairs, "splits", SPLITS_KEYS, "pairs.")
    mix = _section(recipe, pairs, "mix", MIX_KEYS, "pairs.")
    _section(recipe, data, "task", TASK_KEYS)
    if bool(rankings.get("ref")) == bool(rankings.get("importer")):
        raise CumedError(f"{recipe.path}: rankings needs exactly one of importer: disc (rank the DISC-MedLLM "
                         f"evaluation) or ref: NAME@N (a rankings dataset in the store)")
    if rankings.get("importer") not in (None, "disc"):
        raise CumedError(f"{recipe.path}: rankings.importer {rankings['importer']!r} is not known; use disc, or "
                         f"ref: NAME@N for rankings already in the store")
    method = rankings.get("method", "gpt4_score")
    if method not in METHODS:
        raise CumedError(f"{recipe.path}: rankings.method {method!r}; use one of {', '.join(METHODS)}")
    order = tuple(rankings.get("source_order") or DISC_SOURCE_ORDER)
    if sorted(order) != sorted(DISC_SOURCE_ORDER):
        raise CumedError(f"{recipe.path}: rankings.source_order must list each of {', '.join(DISC_SOURCE_ORDER)} once "
                         f"(best first); got {', '.join(map(str, order))}")
    margin = pairs.get("margin", "auto")
    return {
        "rankings": {"name": str(rankings.get("name") or "disc-rankings"), "ref": rankings.get("ref"),
                     "source_order": method == "source_order", "doctor": str(rankings.get("doctor", "top")),
                     "order": order},
        "pairs": {"name": recipe.name, "mode": str(pairs.get("mode", "adjacent")), "margin": str(margin),
                  "validation": float(splits.get("validation", 0.05)), "test": float(splits.get("test", 0.05)),
                  "seed": str(splits.get("seed", recipe.name)),
                  "cluster_threshold": splits.get("cluster_threshold", 0.6) or None,
                  "mix_ref": mix.get("ref"), "mix_ratio": float(mix.get("ratio") or 0.0)},
    }


def build_preferences(recipe_path: str | Path, raw: str | Path, store: Store) -> tuple[DatasetVersion, dict]:
    """Rankings (imported, or a store ref) -> a published ``preferences`` version, per the recipe."""
    recipe = read_recipe(recipe_path)
    opts = check_preferences_recipe(recipe)
    store = store if isinstance(store, Store) else Store(store)
    r = opts["rankings"]
    if r["ref"]:
        rankings_ref = store.get(r["ref"]).ref
        imported = None
    else:
        rv, report = import_disc(raw, store, name=r["name"], source_order=r["source_order"], doctor=r["doctor"],
                                 order=r["order"], recipe=recipe)
        rankings_ref, imported = rv.ref, {k: v for k, v in report.items() if k != "inputs"}
    dv, stats = publish_pairs(store, rankings_ref, recipe=recipe, **opts["pairs"])
    stats = {**stats, "rankings": rankings_ref, **({"import": imported} if imported else {})}
    return dv, stats
