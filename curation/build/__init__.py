"""``cumed build``'s curation side: a documents or conversations recipe becomes a published version.

    build(recipe_path, raw, store) -> (DatasetVersion, stats)

The documents build runs on datatrove (``curation.build.documents``: three resumable stages);
the conversations build is ``curation.sft.build``. The rooms of this package, one concept each:

- ``reader``     a recipe's sources read inside a stage, spread over tasks by size
- ``steps``      recipe -> stage A's steps, near-duplicate options, models applied
- ``executors``  local processes or a Ray cluster; quiet logs; a failed task as one line
- ``task_gc``    a full garbage collection after every task: a worker's memory stays flat
- ``progress``   progress bars over a stage's completions
- ``stats``      Table-1 figures and the nothing-lost check
- ``card``       the version's README
- ``documents``  the orchestration of the three stages and the publish

On Slurm, use datatrove's ``SlurmPipelineExecutor`` with ``curation.build.steps.build_steps``.
"""

from __future__ import annotations

from pathlib import Path

from cumed.errors import CumedError
from cumed.store import DatasetVersion, Store
from curation.build.documents import build_documents
from curation.build.steps import build_steps
from curation.recipe import load_recipe
from curation.workfolder import is_url


def build(recipe_path: str | Path, raw: str | Path, store: Store, *, executor: str = "local", workers: int = 1,
          work_root: str | Path = ".cache/builds", progress: bool = True,
          keep_work: bool = True, dedup_tasks: int | None = None) -> tuple[DatasetVersion, dict]:
    """Build a ``documents`` or ``conversations`` recipe and publish it (preferences recipes are
    annotation's: ``cumed build`` dispatches them there)."""
    recipe = load_recipe(recipe_path, raw)
    if recipe.kind == "conversations":
        from curation.sft.build import build_conversations

        if is_url(raw):  # one process: it reads a local mirror of just the files it needs
            from curation.build.side_mirror import conversations_raw

            raw = conversations_raw(recipe)
        return build_conversations(recipe_path, raw, store, progress=progress)
    if recipe.kind != "documents":
        raise CumedError(f"curation builds documents and conversations recipes; {recipe.path} is kind {recipe.kind!r}: "
                         f"build it with `cumed build {recipe.path}`")
    return build_documents(recipe, store, executor=executor, workers=workers, work_root=work_root, progress=progress,
                           keep_work=keep_work, dedup_tasks=dedup_tasks)


__all__ = ["build", "build_documents", "build_steps"]
