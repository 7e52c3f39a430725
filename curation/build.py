"""``cumed build``: a recipe becomes datatrove pipelines, then a published store version.

Three datatrove stages, each resumable (completed ranks are skipped on a re-run because the
work folder is keyed by the recipe, the code (a hash of its sources) and the raw files' hashes):

A. per shard: read -> drop read errors -> normalise -> mojibake -> PII -> filters ->
   decontaminate -> near-dup signatures -> Parquet (``filtered/``)
B. one task: cluster duplicates from the signatures -> decisions
C. per shard: Parquet (``filtered/``) -> duplicate filter -> Parquet (``kept/``)

Every filter has an exclusion writer into ``removed/<step>/``, so "read = kept + removed"
holds by construction; it is also checked against an independent count of what the readers
yielded before anything is published. The shard count is fixed by the recipe (not by
``--workers``), so the output is the same whatever the parallelism.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers import ParquetWriter

from cumed import __version__
from cumed.errors import CumedError
from curation.metrics import add_counts
from cumed.process import pipeline_gc, reuse_freed_memory
from curation.recipe import Recipe, load_recipe
from curation.rows import DOC_SCHEMA, REMOVED_SCHEMA, RankParquetWriter, kept_adapter, removed_adapter
from curation.steps.base import DropReadErrors
from cumed.store import DatasetVersion, Store
from curation.tokens import TokenCounter


class RecipeReader(PipelineStep):
    """Reads every (source, file) unit of a recipe; units are spread over ranks by size.

    Greedy largest-first bin packing keeps shards balanced (the 40 MB CMeKG file gets a shard
    of its own) and depends only on the recipe and the files, never on ``--workers``.
    """

    name = "recipe reader"
    type = "📖 - READER"

    def __init__(self, recipe: Recipe, counts_dir: str):
        super().__init__()
        from curation.readers import make_reader

        self.counts_dir = counts_dir
        self.raw = str(Path(recipe.raw).resolve())
        self.readers = {}
        units = []
        for s in recipe.sources:
            if not s.enabled:
                continue
            try:
                self.readers[s.name] = make_reader(_source_dict(s), self.raw)
            except (ValueError, FileNotFoundError) as e:
                raise CumedError(f"{recipe.path}: {e}") from e
            for f in s.files:
                units.append((f.stat().st_size, s.name, str(f.relative_to(recipe.raw))))
        self.units = units

    def assignment(self, world_size: int) -> list[list[tuple[str, str]]]:
        bins = [[0, []] for _ in range(world_size)]
        for size, source, rel in sorted(self.units, key=lambda u: (-u[0], u[1], u[2])):
            target = min(range(world_size), key=lambda i: (bins[i][0], i))
            bins[target][0] += size
            bins[target][1].append((source, rel))
        return [sorted(b[1]) for b in bins]

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        counts: dict[str, int] = defaultdict(int)
        for source, rel in self.assignment(world_size)[rank]:
            reader = self.readers[source]
            # Readers take paths relative to their own data folder (raw root + the path's fixed prefix).
            local = os.path.relpath(os.path.join(self.raw, rel), reader.data_folder.path)
            # time spent reading only: a `with track_time()` around the loop would also count
            # what the downstream steps do while this generator waits at `yield`
            docs, spent, n = iter(reader.read_file(local)), 0.0, 0
            while True:
                t0 = time.perf_counter()
                doc = next(docs, None)
                spent += time.perf_counter() - t0
                if doc is None:
                    break
                n += 1
                yield doc
            counts[source] += n
            self.stats.time_stats.update(spent, "file")
            add_counts(self, {"documents": n, f"read_{source}": n})
        os.makedirs(self.counts_dir, exist_ok=True)
        tmp = Path(self.counts_dir) / f".{rank:05d}.json"
        tmp.write_text(json.dumps(counts))
        os.replace(tmp, Path(self.counts_dir) / f"{rank:05d}.json")


def _source_dict(s) -> dict:
    return {"name": s.name, "reader": s.reader, "path": s.path, "category": s.category, "department": s.department,
            "license": s.license, "options": s.options}


def _removed_writer(work: Path, order: int, step_name: str) -> ParquetWriter:
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
    steps: list = [DropReadErrors(exclusion_writer=_removed_writer(work, 0, "reader"))]
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
                steps.append(FILTERS[fname](exclusion_writer=_removed_writer(work, order, fname), **kwargs))
        quality = cfg.get("quality")
        if quality:
            # {artifact: quality@latest | path, threshold: optional override} (trained by annotation.quality)
            from curation.steps.quality import QualityFilter

            steps.append(QualityFilter(exclusion_writer=_removed_writer(work, 70, "quality"),
                                       store=str(store.root) if store is not None else None, **quality))
        decon = cfg.get("decontaminate")
        if decon:
            from curation.steps.decontaminate import Decontaminate

            steps.append(Decontaminate(exclusion_writer=_removed_writer(work, 80, "decontaminate"),
                                       raw=str(recipe.raw), **(decon if isinstance(decon, dict) else {})))
    except TypeError as e:
        raise CumedError(f"bad step options in {recipe.path}: {e}; see the step's docstring for its keyword arguments") from e
    except (ValueError, FileNotFoundError) as e:
        raise CumedError(f"{recipe.path}: {e}") from e
    return steps


class _Progress:
    """A rich progress bar over a datatrove stage, fed by polling its completions folder."""

    def __init__(self, label: str, logging_dir: Path, tasks: int, enabled: bool):
        self.label, self.dir, self.tasks, self.enabled = label, logging_dir / "completions", tasks, enabled
        self._stop = threading.Event()

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TimeElapsedColumn(), transient=False)
            self._p.start()
            self._t = self._p.add_task(self.label, total=self.tasks)
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _count(self) -> int:
        return len(list(self.dir.glob("*"))) if self.dir.is_dir() else 0

    def _poll(self):
        while not self._stop.wait(0.5):
            self._p.update(self._t, completed=self._count())

    def __exit__(self, *exc):
        if self.enabled:
            self._stop.set()
            self._thread.join()
            self._p.update(self._t, completed=self._count())
            self._p.stop()


def _run(executor) -> None:
    reuse_freed_memory()
    with pipeline_gc():
        executor.run()


def _executor(kind: str, pipeline: list, tasks: int, workers: int, logging_dir: Path):
    if kind == "local":
        from curation.executor import LocalExecutor

        return LocalExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=str(logging_dir),
                             start_method="fork")
    if kind == "ray":
        try:
            import ray
            from datatrove.executor.ray import RayPipelineExecutor
        except ImportError as e:
            raise CumedError("--executor ray needs Ray: pip install 'cumed[ray]'") from e
        if not ray.is_initialized():
            ray.init(num_cpus=max(workers, 1), include_dashboard=False, log_to_driver=False)
        # mem_per_cpu_gb x cpus_per_task must stay below Ray's memory resource or tasks wait forever.
        mem = ray.cluster_resources().get("memory", 2 * 2**30) / 2**30
        return RayPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=str(logging_dir),
                                   cpus_per_task=1, mem_per_cpu_gb=max(0.1, min(2.0, mem / max(workers, 1) * 0.5)))
    raise CumedError(f"unknown executor {kind!r}; use local or ray (Slurm: see README)")


def _quiet_datatrove(level: str = "ERROR") -> None:
    """datatrove prints per-task INFO logs and a stats dump to stderr; keep them in the task log
    files (``.cache/builds/.../logs``) and show only errors, so our progress bars stay readable."""
    import sys

    import datatrove.executor.base as executor_base
    import datatrove.utils.logging as dt_logging
    from loguru import logger

    if getattr(dt_logging, "_cumed_quiet", None) == level:
        return
    fmt = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}"

    def one_line(record) -> str:
        # a callable format gets no traceback appended: the task log file keeps the traceback,
        # the terminal gets the message (and cumed's own one-line error after it)
        return "{level: <8} | {name}:{function}:{line} - {message}\n"

    def add_task_logger(logging_dir, rank, local_rank=0, node_rank=-1):
        # Same files as datatrove's own (logs/task_XXXXX.log, DEBUG); stderr only for errors.
        logger.remove()
        logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
        logger.add(sys.stderr, level=level, format=one_line)
        logger.add(logfile, level="DEBUG", format=fmt, colorize=False)
        logger.info(f"Launching pipeline for {rank=}")
        return logfile

    def setup_default_logger():
        logger.remove()
        logger.add(sys.stderr, level=level, format=one_line)

    dt_logging.add_task_logger = executor_base.add_task_logger = add_task_logger
    try:
        import datatrove.executor.ray as executor_ray

        executor_ray.add_task_logger = add_task_logger
    except ImportError:
        pass
    dt_logging.setup_default_logger = setup_default_logger
    _cache_loguru_lib_dirs()
    setup_default_logger()
    dt_logging._cumed_quiet = level


def _cache_loguru_lib_dirs() -> None:
    """loguru lists the interpreter's library folders (sysconfig, ~4 ms) on every ``logger.add``,
    and datatrove adds sinks for every task: 0.15 s of a 3.5 s near-duplicate stage at 8 shards.
    The list only marks library frames in tracebacks; compute it once."""
    try:
        from loguru._better_exceptions import ExceptionFormatter
    except ImportError:  # pragma: no cover - loguru's internals moved; only slower
        return
    get = getattr(ExceptionFormatter, "_get_lib_dirs", None)
    if get is not None and not hasattr(get, "cache_info"):
        ExceptionFormatter._get_lib_dirs = staticmethod(functools.lru_cache(maxsize=1)(get))


def build(
    recipe_path: str | Path,
    raw: str | Path,
    store: Store,
    *,
    executor: str = "local",
    workers: int = 1,
    work_root: str | Path = ".cache/builds",
    progress: bool = True,
    keep_work: bool = True,
) -> tuple[DatasetVersion, dict]:
    recipe = load_recipe(recipe_path, raw)
    if recipe.kind == "conversations":
        from curation.sft.build import build_conversations

        return build_conversations(recipe_path, raw, store, workers=workers, progress=progress)
    if recipe.kind != "documents":
        raise CumedError(f"cumed build handles documents and conversations recipes; {recipe.path} is kind {recipe.kind!r}")
    inputs = recipe.inputs()
    dedup_cfg = recipe.steps.get("dedup")
    cluster_kwargs = _cluster_kwargs(dedup_cfg, store, recipe.path) if dedup_cfg else {}
    parents = [store.get(dedup_cfg["against"]).ref] if dedup_cfg and dedup_cfg.get("against") else []
    models = _models(recipe, store)
    # The key includes resolved references (dedup parent, classifier), so "@latest" re-runs when they move.
    # The code's own hash too: a resumed build must never mix stage outputs of two code states
    # (the version string does not change between releases).
    key = {"inputs": [i["sha256"] for i in inputs], "parents": parents, "models": models, "code": code_fingerprint()}
    config_hash = recipe.config_hash(key)
    work = Path(work_root) / f"{recipe.name}-{config_hash[:16]}"
    work.mkdir(parents=True, exist_ok=True)
    _quiet_datatrove()
    workers = max(1, int(workers))

    # Stage A: read, clean, filter, decontaminate, sign.
    reader = RecipeReader(recipe, str(work / "counts"))
    pipeline_a = [reader, *build_steps(recipe, work, store)]
    if dedup_cfg:
        from curation.dedup import NearDupSignatures

        pipeline_a.append(NearDupSignatures(str(work / "signatures"), **_sig_kwargs(dedup_cfg)))
    pipeline_a.append(RankParquetWriter(str(work / "filtered"), adapter=kept_adapter, schema=DOC_SCHEMA,
                                    compression="zstd"))
    with _Progress(f"{recipe.name}: read + clean + filter", work / "logs" / "a", recipe.shards, progress):
        _run(_executor(executor, pipeline_a, recipe.shards, workers, work / "logs" / "a"))
    _check_stage(work / "logs" / "a", recipe.shards, "read + clean + filter")

    final_dir = work / "filtered"
    if dedup_cfg:
        from curation.dedup import ApplyDuplicateDecisions, NearDupClusters

        with _Progress(f"{recipe.name}: find duplicates", work / "logs" / "b", 1, progress):
            _run(_executor(executor, [NearDupClusters(str(work / "signatures"), str(work / "dedup"), **cluster_kwargs)],
                           1, 1, work / "logs" / "b"))
        _check_stage(work / "logs" / "b", 1, "find duplicates")
        # Same rows as ParquetReader -> DuplicateFilter -> ParquetWriter (+ exclusion writer into
        # removed/90_dedup), but on Arrow tables: kept texts are copied, never decoded per document.
        pipeline_c = [ApplyDuplicateDecisions(str(work / "filtered"), str(work / "kept"), str(work / "dedup"),
                                              removed_folder=str(work / "removed" / "90_dedup"))]
        with _Progress(f"{recipe.name}: remove duplicates", work / "logs" / "c", recipe.shards, progress):
            _run(_executor(executor, pipeline_c, recipe.shards, workers, work / "logs" / "c"))
        _check_stage(work / "logs" / "c", recipe.shards, "remove duplicates")
        final_dir = work / "kept"

    kept_files = sorted(final_dir.glob("*.parquet"))
    removed_files = sorted((work / "removed").rglob("*.parquet"))
    read_counts = _read_counts(work / "counts", recipe.shards)
    tokens = TokenCounter(recipe.tokenizer)
    stats = collect_stats(recipe, kept_files, removed_files, read_counts, tokens, work)
    lineage = {
        "parents": parents,
        "recipe": {"path": str(recipe.path), "sha256": recipe.sha256},
        "config_hash": config_hash,
        "code_version": __version__,
        "code_sha256": code_fingerprint(),
        "inputs": inputs,
        "annotations": [],
        "models": models,
        "executor": executor,
    }
    dv = store.publish(recipe.name, [_read_conformed(f) for f in kept_files], kind="documents",
                       removed=[_read_conformed(f, removed=True) for f in removed_files],
                       stats=stats, lineage=lineage, card=render_card(recipe, stats))
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return dv, stats


@functools.cache
def code_fingerprint() -> str:
    """sha256 over the Python sources of ``curation`` (paths and bytes): what produced a build."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _models(recipe: Recipe, store: Store) -> list[dict]:
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


def _sig_kwargs(cfg: dict) -> dict:
    return {k: v for k, v in (cfg or {}).items() if k in SIG_KEYS}


def _cluster_kwargs(cfg: dict, store: Store, where: Path) -> dict:
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


def _read_conformed(path: Path, removed: bool = False):
    table = pq.read_table(path)
    schema = REMOVED_SCHEMA if removed else DOC_SCHEMA
    return table.select(schema.names).cast(schema)


def _check_stage(logging_dir: Path, tasks: int, label: str) -> None:
    done = len(list((logging_dir / "completions").glob("*"))) if (logging_dir / "completions").is_dir() else 0
    if done < tasks:
        logs = logging_dir / "logs"
        cause = _last_exception(logs)
        raise CumedError(
            f"stage '{label}' finished {done} of {tasks} tasks"
            + (f": {cause}" if cause else "")
            + f"; task logs in {logs}; fix the cause and re-run the same command to resume (completed tasks are skipped)"
        )


def _last_exception(logs: Path) -> str:
    """The exception line of a failed task's log, so the user sees the cause, not just a count."""
    for f in sorted(logs.glob("*.log")) if logs.is_dir() else []:
        lines = f.read_text(errors="replace").splitlines()
        for line in reversed(lines):
            m = re.match(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$", line.strip())
            if m:
                return f"{m.group(1)}: {m.group(2)}"
    return ""


def _read_counts(folder: Path, shards: int) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for f in sorted(folder.glob("*.json")):
        for k, v in json.loads(f.read_text()).items():
            totals[k] += v
    return dict(totals)


def collect_stats(recipe: Recipe, kept_files, removed_files, read_counts: dict, tokens: "TokenCounter", work: Path) -> dict:
    """Table-1 figures per source and category, removal reasons, per-step change counts.

    Raises if any source's read count differs from kept + removed: a lost document is a bug.
    """
    per_source: dict[str, dict] = {}
    cat = {s.name: s.category for s in recipe.sources}
    lic = {s.name: s.license for s in recipe.sources}
    for s in recipe.sources:
        if s.enabled:
            per_source[s.name] = {"category": s.category, "license": s.license, "read": read_counts.get(s.name, 0),
                                  "kept": 0, "removed": 0, "chars": 0, "bytes": 0, "tokens": 0, "removed_by": {}}
    reasons: dict[str, int] = defaultdict(int)
    lengths: list[int] = []
    for f in kept_files:
        t = pq.read_table(f, columns=["text", "source", "n_chars"])
        for src, group in _group_by_source(t):
            s = per_source.setdefault(src, {"category": cat.get(src, ""), "license": lic.get(src, ""), "read": 0,
                                            "kept": 0, "removed": 0, "chars": 0, "bytes": 0, "tokens": 0,
                                            "removed_by": {}})
            s["kept"] += group.num_rows
            s["chars"] += int(pc.sum(group.column("n_chars")).as_py() or 0)
            s["bytes"] += int(pc.sum(pc.binary_length(group.column("text").cast(pa.binary()))).as_py() or 0)
            s["tokens"] += tokens.count_many(group.column("text").to_pylist())
        lengths.extend(t.column("n_chars").to_pylist())
    for f in removed_files:
        t = pq.read_table(f, columns=["source", "removed_by", "reason"])
        for src, by, reason in zip(t.column("source").to_pylist(), t.column("removed_by").to_pylist(),
                                   t.column("reason").to_pylist()):
            s = per_source.setdefault(src, {"category": cat.get(src, ""), "read": 0, "kept": 0, "removed": 0,
                                            "chars": 0, "bytes": 0, "tokens": 0, "removed_by": {}})
            s["removed"] += 1
            code = f"{by}:{(reason or '').split(':')[0].strip()}" if reason and reason.split(":")[0] != by else by
            s["removed_by"][code] = s["removed_by"].get(code, 0) + 1
            reasons[code] += 1
    lost = {k: v for k, v in per_source.items() if v["read"] != v["kept"] + v["removed"]}
    if lost:
        detail = "; ".join(f"{k}: read {v['read']} != kept {v['kept']} + removed {v['removed']}" for k, v in lost.items())
        raise CumedError(f"documents unaccounted for ({detail}); this is a bug in a step: please report it")
    categories: dict[str, dict] = {}
    for s in per_source.values():
        c = categories.setdefault(s["category"], {"read": 0, "kept": 0, "removed": 0, "chars": 0, "bytes": 0, "tokens": 0})
        for k in c:
            c[k] += s[k]
    return {
        "tokenizer": tokens.name,
        "sources": per_source,
        "categories": categories,
        "removed_by_reason": dict(sorted(reasons.items())),
        "steps": _step_stats(work),
        "read": sum(s["read"] for s in per_source.values()),
        "kept": sum(s["kept"] for s in per_source.values()),
        "removed": sum(s["removed"] for s in per_source.values()),
        "length_quantiles": _quantiles(lengths),
    }


def _group_by_source(t: pa.Table):
    sources = t.column("source")
    for src in pc.unique(sources).to_pylist():
        yield src, t.filter(pc.equal(sources, src))


def _quantiles(values: list[int]) -> dict:
    if not values:
        return {}
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"p05": pick(0.05), "p50": pick(0.5), "p95": pick(0.95), "max": values[-1]}


def _step_stats(work: Path) -> dict:
    """Counters that datatrove merged per step (``changed``, ``pii_*``, ``dropped_*``...)."""
    out = {}
    for stage in ("a", "b", "c"):
        f = work / "logs" / stage / "stats.json"
        if not f.is_file():
            continue
        for step in json.loads(f.read_text()):
            # datatrove names steps "<type>: <name>"; the name alone is what users know.
            name = re.sub(r"^\W+", "", step.get("name", "?").split(": ", 1)[-1]) or "?"
            counters = {}
            for k, v in (step.get("stats") or {}).items():
                if isinstance(v, dict) and "total" in v:
                    counters[k] = v["total"]
                elif isinstance(v, (int, float)):
                    counters[k] = v
            if counters:
                out[name] = counters
    return out


def render_card(recipe: Recipe, stats: dict) -> str:
    lines = [f"# {recipe.name}", "", recipe.description or "", "", recipe.card or "", "",
             f"## Sources (tokens counted with {stats['tokenizer']})", "",
             "| source | category | license | read | kept | removed | chars | bytes | tokens |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, s in stats["sources"].items():
        lines.append(f"| {name} | {s['category']} | {s.get('license', '')} | {s['read']:,} | {s['kept']:,} | "
                     f"{s['removed']:,} | {s['chars']:,} | {s['bytes']:,} | {s['tokens']:,} |")
    lines += ["", "## Removal reasons", "", "| removed by | rows |", "|---|---:|"]
    for k, v in sorted(stats["removed_by_reason"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {k} | {v:,} |")
    lines += ["", f"Recipe: `{recipe.path}` (sha256 `{recipe.sha256[:16]}`)", ""]
    return "\n".join(lines)


__all__ = ["build", "build_steps", "collect_stats", "RecipeReader"]
