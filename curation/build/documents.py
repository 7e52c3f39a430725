"""The documents build: a recipe becomes three datatrove stages, then a published version.

A. per shard: read -> drop read errors -> normalise -> mojibake -> PII -> filters -> quality ->
   relevance -> decontaminate -> near-dup signatures -> Parquet (``filtered/``)
B. exact-hash and band-hash range tasks: exact duplicates, candidate pairs, Jaccard check; then
   one task unions the verified pairs -> decisions (``curation.dedup.buckets``)
C. per shard: Parquet (``filtered/``) -> duplicate decisions -> the removed rows (``removed/``) and
   their positions (``kept/``); the driver publishes ``filtered/`` less those (``curation.build.kept``)

Each stage is resumable: the work folder is keyed by the recipe, the code (a hash of its
sources), the raw files' hashes, the resolved parents and models, the side files the steps read
(evaluation sets, lexicon, tokenizer: ``steps.side_inputs``) and the package versions
(``steps.dependencies``), so completed tasks of a killed run are skipped and a build never mixes
outputs of two code states, or of two versions of an evaluation set. The lineage records the
side files' sha256 (``side_inputs``) and the versions (``dependencies``).

The work folder may be on object storage (``--work s3://bucket/builds``, any fsspec URL), as may
the sources (``--raw s3://...``) and the store: the stages exchange files only through the work
folder, and a task's local files live in a private scratch folder deleted when it ends
(``curation.workfolder``), so the nodes of a cluster need to share nothing but the bucket.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cumed.lineage import build_lineage, code_fingerprint
from cumed.store import DatasetVersion, Store
from curation.batch import BATCHES, CHUNKS, DOCUMENTS
from curation.build.card import render_card
from curation.build.executors import quiet_datatrove, run_stage
from curation.build.kept import KeptRows
from curation.build.progress import print_steps
from curation.build.reader import RecipeReader
from curation.build.stats import BuildStats, read_counts
from curation.build.steps import (build_steps, cluster_options, dependencies, models_applied, resolved_steps,
                                  side_inputs, signature_options)
from curation.recipe import Recipe
from curation.rows import DOC_SCHEMA, REMOVED_SCHEMA, RankParquetWriter, intermediate_parquet, kept_adapter
from curation.tokens import TokenCounter
from curation.workfolder import check_reachable, is_url, join, local_view, remove

# What the documents build's code fingerprint covers (its work folder key and lineage).
CODE_PACKAGES = ("cumed", "curation")
# Documents per stage-B task by default. A near-duplicate candidate task holds its share of the
# band hashes and sorts them: measured ~1.1 KB per document of its share (2.27 GB per task for
# 4M documents in 2 tasks, BENCHMARKS.md "10 million documents"), so 500k keeps a task near 0.6 GB
# and the number of tasks, not their memory, grows with the corpus.
DOCS_PER_DEDUP_TASK = 500_000


def build_documents(recipe: Recipe, store: Store, *, executor: str = "local", workers: int = 1,
                    work_root: str | Path = ".cache/builds", progress: bool = True,
                    keep_work: bool = True, dedup_tasks: int | None = None) -> tuple[DatasetVersion, dict]:
    """``dedup_tasks``: tasks of each parallel step of stage B (default: the recipe's
    ``dedup.tasks``, else one per 500,000 documents read and at least ``workers``); the
    decisions do not depend on it, only each task's memory (its share of the signatures)."""
    steps = resolved_steps(recipe)  # what runs: the steps the recipe lists, nothing else
    if progress:
        print_steps(recipe.name, steps)
    inputs = recipe.inputs()
    dedup_cfg = recipe.step("dedup")  # None: not listed; {}: the defaults
    cluster_kwargs = cluster_options(dedup_cfg, store, recipe.path) if dedup_cfg else {}
    parents = [store.get(dedup_cfg["against"]).ref] if dedup_cfg and dedup_cfg.get("against") else []
    models = models_applied(recipe, store)
    side = side_inputs(recipe, store)
    deps = dependencies(recipe, store)
    config_hash = recipe.config_hash(work_key(inputs, parents, models, side, deps))
    work_url = join(work_root, f"{recipe.name}-{config_hash[:16]}")  # a local folder or a URL
    if is_url(work_url):
        check_reachable(work_url, "--work")
    else:
        Path(work_url).mkdir(parents=True, exist_ok=True)
    quiet_datatrove()
    workers = max(1, int(workers))
    logs = join(work_url, "logs")

    # Stage A: read, clean, filter, decontaminate, sign.
    pipeline_a = build_steps(recipe, work_url, store)
    if dedup_cfg is not None:
        from curation.dedup import NearDupSignatures

        pipeline_a.append(NearDupSignatures(join(work_url, "signatures"), **signature_options(dedup_cfg)))
    pipeline_a.append(RankParquetWriter(join(work_url, "filtered"), adapter=kept_adapter, schema=DOC_SCHEMA,
                                        **intermediate_parquet(work_url)))
    pipeline_a.insert(0, RecipeReader(recipe, join(work_url, "counts"), stream=stream_kind(pipeline_a)))
    if dedup_cfg is not None and executor == "local" and workers > 1:
        # in the driver, once: every stage's workers are forked from it and find them loaded
        from curation.compiled import preload
        from curation.dedup.buckets import DEDUP_KERNELS

        preload(*DEDUP_KERNELS)
    run_stage(f"{recipe.name}: read + clean + filter", pipeline_a, recipe.shards, workers, executor, join(logs, "a"),
              progress)

    final = "filtered"
    if dedup_cfg is not None:
        from curation.dedup import ApplyDuplicateDecisions
        from curation.dedup.buckets import bucket_stages

        # Stage B in bucket tasks (exact-hash and band-hash ranges), then one task over the pairs:
        # the same decisions for any number of tasks, each task's memory its share of the signatures.
        for key, label, pipeline_b, tasks in bucket_stages(join(work_url, "signatures"), join(work_url, "dedup"),
                                                           dedup_tasks or dedup_cfg.get("tasks")
                                                           or dedup_task_count(work_url, workers),
                                                           **cluster_kwargs):
            run_stage(f"{recipe.name}: {label}", pipeline_b, tasks, min(workers, tasks), executor, join(logs, key),
                      progress)
        # Same rows as ParquetReader -> DuplicateFilter -> ParquetWriter (+ exclusion writer into
        # removed/90_dedup), but on Arrow tables; the kept rows stay in filtered/, only the removed
        # ones' positions are written (kept/), and the driver reads filtered/ less those.
        pipeline_c = [ApplyDuplicateDecisions(join(work_url, "filtered"), join(work_url, "kept"),
                                              join(work_url, "dedup"),
                                              removed_folder=join(work_url, "removed", "90_dedup"),
                                              kept="positions", **intermediate_parquet(work_url))]
        run_stage(f"{recipe.name}: remove duplicates", pipeline_c, recipe.shards, workers, executor, join(logs, "c"),
                  progress)
        final = "kept"

    # The driver reads the final outputs in place (a local work folder), or from a private copy of
    # just those (object storage), deleted once they are published.
    with local_view(work_url, ["filtered", *(["kept"] if final == "kept" else []), "removed", "counts",
                               *(f"logs/{s}/stats.json" for s in "abc")]) as work:
        kept = KeptRows.of_build(work, final, recipe.shards)
        removed_files = sorted((work / "removed").rglob("*.parquet"))
        figures = BuildStats(recipe, read_counts(work / "counts"), TokenCounter(recipe.tokenizer), work)
        lineage = build_lineage(recipe=recipe.lineage(), config_hash=config_hash, code_packages=CODE_PACKAGES,
                                inputs=inputs, parents=parents, models=models, executor=executor,
                                side_inputs=side, dependencies=deps, steps=steps)
        # Generators, not lists: the store writes one shard's table at a time, so the publishing
        # process holds one shard, not the corpus (10M short QA records: ~4.5 GB of text). The
        # figures are gathered from the same batches on their way (read once), and the store asks
        # for them after the rows, before it commits: a lost document still publishes nothing.
        dv = store.publish(recipe.name, (_conformed(figures.kept(t)) for t in kept.batches(DOC_SCHEMA.names)),
                           kind="documents",
                           removed=(figures.removed(t) for f in removed_files for t in _read_conformed(f, removed=True)),
                           stats=figures.result, lineage=lineage, card=lambda: render_card(recipe, figures.result()))
        stats = figures.result()
    if not keep_work:
        remove(work_url)
    return dv, stats


def stream_kind(steps) -> str:
    """What stage A's reader yields (``curation.batch``): chunks as columns when no step needs one
    document at a time (a dedup-only recipe), else chunks of Documents when every step takes them,
    else single documents; the same rows and files either way."""
    if all(getattr(step, "takes_batches", False) for step in steps):
        return BATCHES
    return CHUNKS if all(getattr(step, "takes_chunks", False) for step in steps) else DOCUMENTS


def dedup_task_count(work_url: str, workers: int, docs_per_task: int = DOCS_PER_DEDUP_TASK) -> int:
    """Stage B's default task count: one task per ``docs_per_task`` documents read (stage A's
    counts, an upper bound of the signed ones), at least one per worker."""
    return max(workers, -(-sum(read_counts(join(work_url, "counts")).values()) // docs_per_task))


def work_key(inputs: list[dict], parents: list[str], models: list[dict], side: list[dict], deps: dict) -> dict:
    """What the work folder is keyed by (with the recipe): everything a stage output depends on.

    Resolved references (dedup parent, classifier), so "@latest" re-runs when they move; the
    side files the steps read (evaluation sets, lexicon, tokenizer), so a re-run after an
    evaluation set changed never resumes from outputs decontaminated against the old one; the
    package versions, for the same reason; and the code's own hash: a resumed build must never
    mix stage outputs of two code states (the version string does not change between releases).
    """
    return {"inputs": [i["sha256"] for i in inputs], "parents": parents, "models": models,
            "side_inputs": side, "dependencies": deps, "code": code_fingerprint(*CODE_PACKAGES)}


def _read_conformed(path: Path, removed: bool = False, batch_rows: int = 65_536):
    """A shard's rows in the published schema, batch by batch: the publishing process holds one
    batch, whatever the shard's size (the store regroups rows into its fixed-size row groups)."""
    schema = REMOVED_SCHEMA if removed else DOC_SCHEMA
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=schema.names):
        yield _conformed(pa.Table.from_batches([batch]), schema)


def _conformed(t: pa.Table, schema: pa.Schema = DOC_SCHEMA) -> pa.Table:
    return t.select(schema.names).cast(schema)


