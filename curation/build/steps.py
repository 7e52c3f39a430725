"""Recipe -> steps: stage A's per-document steps from the recipe's ``steps`` mapping (the steps it
lists are the steps that run: ``resolved_steps``), each filter
with its exclusion writer, plus the options of the near-duplicate stages, the models a recipe
applies, the side files its steps read and the package versions they run with (for the work
folder key and the lineage)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


from cumed.errors import CumedError
from cumed.store import Store
from curation.build.side_inputs import dependency_versions, resolve, tokenizer_files
from curation.recipe import Recipe
from curation.rows import REMOVED_SCHEMA, RankParquetWriter, intermediate_parquet, removed_adapter
from curation.workfolder import is_url, join
from curation.steps.base import DropReadErrors


def removed_writer(work: str | Path, order: int, step_name: str) -> RankParquetWriter:
    """The exclusion writer of one step: ``removed/NN_step/`` of the work folder (local or a URL),
    written a chunk of removed documents at a time (``RankParquetWriter.write_batch``)."""
    return RankParquetWriter(
        join(work, "removed"),
        output_filename=f"{order:02d}_{step_name}/${{rank}}.parquet",
        adapter=removed_adapter,
        schema=REMOVED_SCHEMA,
        **intermediate_parquet(work),
    )


STEP_NAMES = ("normalize", "pii", "filters", "quality", "relevance", "decontaminate", "dedup")


@dataclass(frozen=True)
class StepSpec:
    """One of stage A's steps before it is built: its class, its options and where its removals go.

    Why a spec first: the build keys its work folder by the files the steps read
    (``side_inputs``), which must be known before the work folder, and so before the steps'
    exclusion writers, exist; both read the same options from here."""

    name: str  # the recipe's step name ("filters.<filter>" for a filter)
    cls: type
    kwargs: dict = field(default_factory=dict)
    removed: tuple[int, str] | None = None  # (order, name) of its removed/ folder

    def build(self, work: str | Path):
        extra = {"exclusion_writer": removed_writer(work, *self.removed)} if self.removed else {}
        return self.cls(**extra, **self.kwargs)

    def side_files(self) -> list[dict]:
        """The files this step will read besides the documents (``side_files`` of its class)."""
        side = getattr(self.cls, "side_files", None)
        return list(side(**self.kwargs)) if side else []


FILTERS_ALL = "all"


def filter_options(recipe: Recipe) -> dict[str, dict]:
    """``{filter: options}`` of the filters the recipe runs, in the order it lists them.

    ``filters: all`` runs the nine (``FILTERS``) with their defaults; a mapping runs the filters
    it lists (``{}`` or ``true`` for a filter's defaults, ``false`` to keep one listed but off);
    an empty mapping is an error (it would run nothing while looking like "the defaults")."""
    from curation.steps.filters import FILTERS, enabled_filters

    cfg = recipe.step("filters")
    if cfg is None:
        return {}
    if cfg == FILTERS_ALL:
        chosen = {name: {} for name in FILTERS}
    elif isinstance(cfg, dict) and cfg:
        chosen = dict(cfg)
    else:
        raise CumedError(f"steps.filters in {recipe.path} is {cfg!r}; list the filters to run "
                         f"(e.g. {{min_length: {{}}, cjk_ratio: {{}}}}) or write `filters: {FILTERS_ALL}` for all of "
                         f"them ({', '.join(FILTERS)})")
    try:
        return enabled_filters(chosen)
    except ValueError as e:
        raise CumedError(f"{recipe.path}: {e}") from None


def resolved_steps(recipe: Recipe) -> list[dict]:
    """What the build runs, in pipeline order, with the options it runs them with:
    ``[{"step": "normalize", "options": {}}, {"step": "filters.min_length", ...}, ..., {"step": "dedup", ...}]``.

    The steps a recipe lists are the steps that run (``Recipe.step``): nothing is on by default.
    Side inputs a step reads appear with their defaults (the lexicon files, the evaluation sets).
    Printed before the build starts and recorded in the lineage (``steps``)."""
    from curation.steps.decontaminate import DEFAULT_SETS
    from curation.steps.lexicon import DEFAULT_LEXICON

    cfg = dict(recipe.steps)
    unknown = set(cfg) - set(STEP_NAMES)
    if unknown:
        raise CumedError(f"unknown step(s) {', '.join(sorted(unknown))} in {recipe.path}; allowed: {', '.join(STEP_NAMES)}")
    out = []
    for name in STEP_NAMES:
        if name == "filters":
            for fname, kwargs in filter_options(recipe).items():
                if fname == "lexicon_density" and "terms" not in kwargs:
                    kwargs.setdefault("lexicon", list(DEFAULT_LEXICON))
                out.append({"step": f"filters.{fname}", "options": kwargs})
            continue
        options = recipe.step_options(name)
        if options is None:
            continue
        if name == "decontaminate":
            options.setdefault("eval_sets", list(DEFAULT_SETS))
        out.append({"step": name, "options": options})
    return out


def step_specs(recipe: Recipe, store: Store | None = None) -> list[StepSpec]:
    """Stage A's per-document steps from ``resolved_steps`` (dedup excepted: its own stages),
    not yet built; every filter gets an exclusion writer. Side inputs are resolved against
    ``--raw`` here, so they are demanded only when their step runs."""
    from curation.steps.filters import FILTERS
    from curation.steps.normalize import Normalize
    from curation.steps.pii import PIIRedactor

    specs = [StepSpec("reader", DropReadErrors, removed=(0, "reader"))]
    listed = recipe.step("filters")
    # removed/ folder order: the filter's place in the recipe's list (stable paths)
    filter_order = list(FILTERS) if listed == FILTERS_ALL else list(listed or {})
    for entry in resolved_steps(recipe):
        name, kwargs = entry["step"], dict(entry["options"])
        if name == "normalize":
            specs.append(StepSpec("normalize", Normalize, kwargs))
        elif name == "pii":
            specs.append(StepSpec("pii", PIIRedactor, kwargs))
        elif name.startswith("filters."):
            fname = name.split(".", 1)[1]
            if fname == "lexicon_density" and "raw_dir" not in kwargs:  # the lexicon files (unless ``terms``)
                kwargs["raw_dir"] = (str(recipe.raw) if "terms" in kwargs
                                     else side_raw(recipe, kwargs["lexicon"], "filters.lexicon_density.lexicon",
                                                   "the lexicon files"))
            specs.append(StepSpec(name, FILTERS[fname], kwargs, (filter_order.index(fname) + 1, fname)))
        elif name == "quality":
            # {artifact: quality@latest | path, threshold: optional override} (trained by annotation.quality)
            from curation.steps.quality import QualityFilter

            specs.append(StepSpec("quality", QualityFilter,
                                  {"store": str(store.root) if store is not None else None, **kwargs}, (70, "quality")))
        elif name == "relevance":
            specs.append(relevance_spec(recipe, store, kwargs))
        elif name == "decontaminate":
            from curation.build.side_mirror import eval_set_paths
            from curation.steps.decontaminate import Decontaminate

            raw = {} if "raw" in kwargs else {"raw": side_raw(recipe, eval_set_paths(kwargs), "decontaminate.paths",
                                                              "the evaluation sets")}
            specs.append(StepSpec("decontaminate", Decontaminate, {**raw, **kwargs}, (80, "decontaminate")))
    return specs


def side_raw(recipe: Recipe, patterns, key: str, what: str) -> str:
    """The folder a step reads its side files from: ``--raw``, or where ``--raw`` is on object
    storage, a local mirror of the files ``patterns`` name (``curation.build.side_mirror``)."""
    if not is_url(recipe.raw):
        return str(recipe.raw)
    from curation.build.side_mirror import mirror

    return str(mirror(str(recipe.raw), patterns, key=key, what=what))


RELEVANCE_KEYS = {"labels", "sources", "threshold", "labels_raw"}


def relevance_spec(recipe: Recipe, store: Store | None, cfg) -> StepSpec:
    """``relevance: {labels: curation/relevance/labels, sources: [chinaxiv_medical], threshold: null}``:
    the model trained from the labels at build time, or reused from the store by its training key
    (``curation.relevance.model``); ``threshold: null`` takes the one recorded with the model.
    ``labels_raw``: the raw folder holding the labelled papers when the build's ``--raw`` does not
    (a replicated or a user's corpus: the labels name the seed's ChinaXiv files). With ``--raw`` on
    object storage and no ``labels_raw``, the labelled source is mirrored from there
    (``side_mirror.labelled_recipe``)."""
    from curation.relevance.model import relevance_model
    from curation.steps.relevance import DEFAULT_SOURCES, RelevanceFilter

    cfg = {} if cfg is True else dict(cfg)
    unknown = set(cfg) - RELEVANCE_KEYS
    if unknown:
        raise CumedError(f"unknown relevance option(s) {', '.join(sorted(unknown))} in {recipe.path}; "
                         f"allowed: {', '.join(sorted(RELEVANCE_KEYS))}")
    sources = list(cfg.get("sources") or DEFAULT_SOURCES)
    names = {s.name for s in recipe.sources}
    if set(sources) - names:
        raise CumedError(f"{recipe.path}: steps.relevance.sources names {', '.join(sorted(set(sources) - names))}, "
                         f"not a source of the recipe ({', '.join(sorted(names))})")
    labelled = recipe
    if not cfg.get("labels_raw") and is_url(recipe.raw):
        from curation.build.side_mirror import labelled_recipe
        from curation.relevance.model import LABELLED_SOURCE

        labelled = labelled_recipe(recipe, LABELLED_SOURCE)
    elif cfg.get("labels_raw"):
        from curation.recipe import load_recipe

        labelled = load_recipe(recipe.path, Path(cfg["labels_raw"]).expanduser())
    path = relevance_model(labelled, store, cfg.get("labels") or "curation/relevance/labels")
    return StepSpec("relevance", RelevanceFilter, {"artifact": str(path), "threshold": cfg.get("threshold"),
                                                   "sources": sources}, (75, "relevance"))


@contextmanager
def step_errors(recipe: Recipe):
    """A step's bad option or missing file as one ``CumedError`` naming the recipe."""
    try:
        yield
    except TypeError as e:
        raise CumedError(f"bad step options in {recipe.path}: {e}; see the step's docstring for its keyword arguments") from e
    except KeyError as e:  # an unknown evaluation set name
        raise CumedError(f"{recipe.path}: {e.args[0] if e.args else e}") from e
    except (ValueError, FileNotFoundError) as e:
        raise CumedError(f"{recipe.path}: {e}") from e


def build_steps(recipe: Recipe, work: str | Path, store: Store | None = None) -> list:
    """Stage A's per-document steps (see ``step_specs``), each filter with its exclusion writer."""
    specs = step_specs(recipe, store)
    with step_errors(recipe):
        steps = [spec.build(work) for spec in specs]
        if is_url(recipe.raw):
            # Side files mirrored from object storage live on the driver only: the tasks (on
            # other nodes of a cluster) get the decontamination index inside the pickled step.
            for step in steps:
                if hasattr(step, "carry_index"):
                    step.carry_index()
    return steps


def side_inputs(recipe: Recipe, store: Store | None = None) -> list[dict]:
    """Every file the build reads besides its sources, with sha256 (``curation.build.side_inputs``):
    the evaluation sets of ``decontaminate``, the lexicon files of ``lexicon_density``, the
    recipe's tokenizer. The quality model is not here: ``models_applied`` names it."""
    specs = step_specs(recipe, store)
    with step_errors(recipe):
        files = [f for spec in specs for f in spec.side_files()]
        return resolve(files + tokenizer_files(recipe.tokenizer, recipe.raw))


# Third-party packages whose version can change the rows (or the stats), per step; datatrove runs
# every step and pyarrow writes every row. The versions join the work folder key and the lineage.
BUILD_PACKAGES = ("datatrove", "pyarrow")
STEP_PACKAGES = {
    "normalize": ("opencc",),  # Traditional -> Simplified tables
    "filters.lexicon_density": ("ahocorasick",),  # leftmost-longest term matching
    "quality": ("fasttext", "jieba"),  # the classifier and its word tokenizer
    "relevance": ("fasttext",),  # character n-grams: no jieba
    "decontaminate": ("numpy", "opencc"),  # canonical form (t2s) and span hashes
    "dedup": ("numpy", "opencc"),
}


def dependencies(recipe: Recipe, store: Store | None = None) -> dict[str, str]:
    """``{package: version}`` for the packages this recipe's steps use (``STEP_PACKAGES``)."""
    names = [spec.name for spec in step_specs(recipe, store)] + (["dedup"] if recipe.step("dedup") is not None else [])
    modules = [*BUILD_PACKAGES, *(m for n in names for m in STEP_PACKAGES.get(n, ()))]
    if recipe.tokenizer:
        modules.append("tokenizers")
    return dependency_versions(modules)


def models_applied(recipe: Recipe, store: Store) -> list[dict]:
    """Classifier artifacts a recipe applies, resolved to a version and the model file's sha256
    (the relevance model trained first when the store has none for its labels)."""
    from curation.quality.artifact import read_meta, resolve_artifact

    paths = []
    q = recipe.step("quality")
    if q is not None:
        paths.append(resolve_artifact(q.get("artifact", "quality@latest"), store))
    if recipe.step("relevance") is not None:
        paths.append(Path(relevance_spec(recipe, store, recipe.step("relevance")).kwargs["artifact"]))
    out = []
    for path in paths:
        meta = read_meta(path)
        out.append({"name": meta.get("name"), "version": meta.get("version"), "path": str(path),
                    "sha256": meta["files"]["model.bin"]["sha256"]})
    return out



SIG_KEYS = {"n", "bands", "rows", "seed", "synthetic_sources"}
CLUSTER_KEYS = {"threshold", "est_margin", "max_bucket", "partitions", "verify"}


def signature_options(cfg: dict) -> dict:
    return {k: v for k, v in (cfg or {}).items() if k in SIG_KEYS}


def cluster_options(cfg: dict, store: Store, where: Path) -> dict:
    """Clustering options; ``against: name@N`` dedups against an earlier published version.

    ``tasks`` (stage B's parallel tasks; read by the build, not a clustering option) is allowed here
    and left out: it changes each task's memory, never a decision."""
    cfg = dict(cfg or {})
    if cfg.get("tasks") is not None and (not isinstance(cfg["tasks"], int) or isinstance(cfg["tasks"], bool)
                                         or cfg["tasks"] < 1):
        raise CumedError(f"dedup tasks {cfg['tasks']!r} in {where}: give a whole number >= 1 (or leave it out: one per 500k documents)")
    unknown = set(cfg) - SIG_KEYS - CLUSTER_KEYS - {"against", "tasks"}
    if unknown:
        raise CumedError(
            f"unknown dedup option(s) {', '.join(sorted(unknown))} in {where}; "
            f"allowed: {', '.join(sorted(SIG_KEYS | CLUSTER_KEYS | {'against', 'tasks'}))}"
        )
    kwargs = {k: v for k, v in cfg.items() if k in CLUSTER_KEYS}
    try:  # ``verify: coverage | jaccard | {rule: ..., cover_both: ...}`` (curation.dedup.core.verify_options)
        from curation.dedup.core import DedupConfig, verify_options

        DedupConfig(**verify_options(cfg.get("verify")))
    except (TypeError, ValueError) as e:
        raise CumedError(f"dedup verify {cfg.get('verify')!r} in {where}: {e}") from None
    if cfg.get("against"):
        kwargs["reference_folder"] = str(store.get(cfg["against"]).data_dir)
    return kwargs


