"""The labelled documents' text as the relevance step sees it in a build.

The classifier must be trained on the features it scores, so the text is made the way a build
makes it before the relevance step: the recipe's own reader for the source (``make_reader``: the
ChinaXiv Markdown reader drops references and images, turns LaTeX into text), then the recipe's
``normalize`` and ``pii`` steps (the only steps before it that change text; the heuristic filters
only remove). Reading the 765 papers this way takes ~4 s.
"""

from __future__ import annotations

import os
from pathlib import Path

from curation.readers import make_reader, split_path
from curation.recipe import Recipe


def _source(recipe: Recipe, name: str):
    for s in recipe.sources:
        if s.name == name:
            return s
    raise ValueError(f"relevance: no source {name!r} in {recipe.path}; sources: {', '.join(s.name for s in recipe.sources)}")


def _cleaners(recipe: Recipe) -> list:
    """The recipe's text-changing steps before the relevance step, built as the build builds them."""
    from curation.steps.normalize import Normalize
    from curation.steps.pii import PIIRedactor

    out = []
    for key, cls in (("normalize", Normalize), ("pii", PIIRedactor)):
        cfg = recipe.step(key)
        if cfg is not None:
            out.append(cls(**dict(cfg)))
    return out


def source_texts(recipe: Recipe, source: str) -> dict[str, dict]:
    """``{path relative to the source's folder: {"id", "text", "title"}}`` for every document of
    ``source`` the reader could read, its text cleaned as in the build.

    For ChinaXiv (``ChinaXiv_medical/*/*.md``) the key is ``urology/ChinaXiv-....md``: the
    ``file`` field of the labels. Record-per-line sources key by document id instead.
    """
    s = _source(recipe, source)
    spec = {"name": s.name, "reader": s.reader, "path": s.path, "category": s.category,
            "department": s.department, "license": s.license, "options": s.options}
    raw = str(Path(recipe.raw).resolve())
    _, _, prefix = split_path(raw, s.path)
    cleaners = _cleaners(recipe)
    reader = make_reader(spec, raw)
    # file by file, as the build's RecipeReader reads them (``run`` would log every file)
    docs = (d for f in s.files for d in reader.read_file(os.path.relpath(f, reader.data_folder.path)))
    out = {}
    for doc in docs:
        if doc.metadata.get("read_error"):
            continue
        text = doc.text
        for step in cleaners:
            text = step.transform(text)
        file = str(doc.metadata.get("file") or "")
        key = file[len(prefix) + 1:] if prefix and file.startswith(prefix + "/") else file
        out[key if s.reader == "markdown" else doc.id] = {"id": doc.id, "text": text,
                                                          "title": str(doc.metadata.get("title") or "")}
    return out
