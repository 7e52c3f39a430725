"""Recipe -> steps: stage A's per-document steps from the recipe's ``steps`` mapping, each filter
with its exclusion writer, plus the options of the near-duplicate stages and the models a recipe
applies (for lineage)."""

from __future__ import annotations

from pathlib import Path

from datatrove.pipeline.writers import ParquetWriter

from cumed.errors import CumedError
from cumed.store import Store
from curation.recipe import Recipe
from curation.rows import REMOVED_SCHEMA, removed_adapter
from curation.steps.base import DropReadErrors


def removed_writer(work: Path, order: int, step_name: str) -> ParquetWriter:
    return ParquetWriter(
        str(work / "removed"),
        output_filename=f"{order:02d}_{step_name}/${{rank}}.parquet",
        adapter=removed_adapter,
        schema=REMOVED_SCHEMA,
        compression="zstd",
    )



STEP_NAMES = ("normalize", "pii", "filters", "quality", "decontaminate", "dedup")


def build_steps(recipe: Recipe, work: Path, store: Store | None = None) -> list:
    """Stage A's per-document steps from the recipe's ``steps`` mapping.

    ``normalize``, ``pii`` and ``filters`` are on by default (``false`` disables one; an empty
    ``filters`` mapping means every filter with its defaults); ``decontaminate`` and ``dedup``
    run only when the recipe configures them. Every filter gets an exclusion writer.
    """
    from curation.steps.filters import FILTERS
    from curation.steps.normalize import Normalize
    from curation.steps.pii import PIIRedactor

    cfg = dict(recipe.steps)
    unknown = set(cfg) - set(STEP_NAMES)
    if unknown:
        raise CumedError(f"unknown step(s) {', '.join(sorted(unknown))} in {recipe.path}; allowed: {', '.join(STEP_NAMES)}")
    steps: list = [DropReadErrors(exclusion_writer=removed_writer(work, 0, "reader"))]
    try:
        if cfg.get("normalize", {}) is not False:
            steps.append(Normalize(**(cfg.get("normalize") or {})))
        if cfg.get("pii", {}) is not False:
            steps.append(PIIRedactor(**(cfg.get("pii") or {})))
        filters = cfg.get("filters", {})
        if filters is not False:
            chosen = dict(filters or {}) or {name: {} for name in FILTERS}
            for order, (fname, kwargs) in enumerate(chosen.items(), start=1):
                if fname not in FILTERS:
                    raise CumedError(f"unknown filter {fname!r} in {recipe.path}; use one of {', '.join(FILTERS)}")
                if kwargs is None or kwargs is False:
                    continue
                kwargs = {} if kwargs is True else dict(kwargs)
                if fname == "lexicon_density":
                    kwargs.setdefault("raw_dir", str(recipe.raw))
                steps.append(FILTERS[fname](exclusion_writer=removed_writer(work, order, fname), **kwargs))
        quality = cfg.get("quality")
        if quality:
            # {artifact: quality@latest | path, threshold: optional override} (trained by annotation.quality)
            from curation.steps.quality import QualityFilter

            steps.append(QualityFilter(exclusion_writer=removed_writer(work, 70, "quality"),
                                       store=str(store.root) if store is not None else None, **quality))
        decon = cfg.get("decontaminate")
        if decon:
            from curation.steps.decontaminate import Decontaminate

            steps.append(Decontaminate(exclusion_writer=removed_writer(work, 80, "decontaminate"),
                                       raw=str(recipe.raw), **(decon if isinstance(decon, dict) else {})))
    except TypeError as e:
        raise CumedError(f"bad step options in {recipe.path}: {e}; see the step's docstring for its keyword arguments") from e
    except (ValueError, FileNotFoundError) as e:
        raise CumedError(f"{recipe.path}: {e}") from e
    return steps


def models_applied(recipe: Recipe, store: Store) -> list[dict]:
    """Classifier artifacts a recipe applies, resolved to a version and the model file's sha256."""
    q = recipe.steps.get("quality")
    if not q:
        return []
    from curation.quality.artifact import read_meta, resolve_artifact

    path = resolve_artifact(q.get("artifact", "quality@latest"), store)
    meta = read_meta(path)
    return [{"name": meta.get("name", "quality"), "version": meta.get("version"), "path": str(path),
             "sha256": meta["files"]["model.bin"]["sha256"]}]



SIG_KEYS = {"n", "bands", "rows", "seed", "synthetic_sources"}
CLUSTER_KEYS = {"threshold", "est_margin", "max_bucket", "partitions"}


def signature_options(cfg: dict) -> dict:
    return {k: v for k, v in (cfg or {}).items() if k in SIG_KEYS}


def cluster_options(cfg: dict, store: Store, where: Path) -> dict:
    """Clustering options; ``against: name@N`` dedups against an earlier published version."""
    cfg = dict(cfg or {})
    unknown = set(cfg) - SIG_KEYS - CLUSTER_KEYS - {"against"}
    if unknown:
        raise CumedError(
            f"unknown dedup option(s) {', '.join(sorted(unknown))} in {where}; "
            f"allowed: {', '.join(sorted(SIG_KEYS | CLUSTER_KEYS | {'against'}))}"
        )
    kwargs = {k: v for k, v in cfg.items() if k in CLUSTER_KEYS}
    if cfg.get("against"):
        kwargs["reference_folder"] = str(store.get(cfg["against"]).data_dir)
    return kwargs


