"""The relevance model a build applies: found in the store by its training key, or trained from the
committed labels and published there (``_models/relevance@N``).

A build calls ``relevance_model`` before its stages (``curation.build.steps``): it reads the
labels, makes the labelled papers' text as the build does (``texts``), hashes both with the
training options (``train.training_key``) and looks the key up (``artifact.find``); only a miss
trains (~15 s on 2 cores: 5 cross-validation fits for the threshold and the final fit). The method is
measured by a model trained on the training part of the fixed split and scored once on the held-out
part, whose rates go into the shipped model's ``meta.json`` (the numbers in BENCHMARKS.md); the
shipped model is the same recipe fitted on every label. Within a process the answer is
memoised: the build asks for its steps several times (work key, side inputs, the steps).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cumed.errors import CumedError
from cumed.recipes import REPO_ROOT
from cumed.store import Store

from curation.recipe import Recipe
from curation.relevance import artifact, train
from curation.relevance.labels import HELD_OUT, PAPER_GLOB, load_papers, split
from curation.relevance.texts import source_texts

# The source the labels are papers of (the ChinaXiv index's `file` is relative to its folder).
LABELLED_SOURCE = "chinaxiv_medical"
# A labelled paper the reader cannot read (a damaged file: the build sets it aside as a read
# error) is left out of training; more than this share missing means the wrong --raw folder.
MAX_UNREADABLE = 0.05
_MEMO: dict[tuple, Path] = {}


def labels_folder(labels: str | Path) -> Path:
    """A recipe's ``labels:`` folder: absolute, or relative to this repository (where they are committed)."""
    p = Path(labels)
    p = p if p.is_absolute() else REPO_ROOT / p
    if not p.is_dir():
        raise CumedError(f"relevance labels folder {labels!r} not found (looked in {p}); the committed labels "
                         f"are curation/relevance/labels")
    return p


def label_files(labels: str | Path) -> list[Path]:
    return sorted(labels_folder(labels).glob(PAPER_GLOB))


def training_data(recipe: Recipe, labels: str | Path):
    """(train papers, held-out papers, {file: text}) for the recipe's labelled source.

    The split is made on every label, then the papers the reader could not read are dropped from
    their side, so one damaged file never moves the others across the split."""
    papers = load_papers(labels_folder(labels))
    docs = source_texts(recipe, LABELLED_SOURCE)
    missing = [p for p in papers if p.file not in docs]
    if len(missing) > MAX_UNREADABLE * len(papers):
        raise CumedError(f"{missing[0].where}: {missing[0].file} is not a readable document of source "
                         f"{LABELLED_SOURCE} under {recipe.raw} ({len(missing)} of {len(papers)} labelled papers "
                         f"missing); check --raw or the labels' files")
    texts = {p.file: docs[p.file]["text"] for p in papers if p.file in docs}
    train_part, held = split(papers)
    return [p for p in train_part if p.file in texts], [p for p in held if p.file in texts], texts


def relevance_model(recipe: Recipe, store: Store, labels: str | Path) -> Path:
    """The version folder of the relevance model for these labels and this raw data (see module doc)."""
    if store is None:
        raise CumedError(f"{recipe.path}: steps.relevance trains or reuses a model in the store; build with a store")
    memo = (str(Path(recipe.raw).resolve()), recipe.sha256, str(store.root),
            tuple((f.name, hashlib.sha256(f.read_bytes()).hexdigest()) for f in label_files(labels)))
    if memo in _MEMO and (_MEMO[memo] / "manifest.json").is_file():
        return _MEMO[memo]
    train_part, held, texts = training_data(recipe, labels)
    key = train.training_key(train_part + held, texts)
    path = artifact.find(store, key)
    if path is None:
        # Measure on the held-out part with a model that never saw it, then ship the same recipe
        # fitted on every label: the held-out numbers describe the method, and the shipped model also
        # learns the held-out papers (a review the measured model missed is then removed too).
        measured, _ = train.fit(train_part, texts)
        held_scores = measured.score([train.features(texts[p.file]) for p in held])
        held_rates = train.rates(held_scores, [p.medical for p in held], measured.threshold)
        model, info = train.fit(train_part + held, texts)
        meta = {"training_key": key, "head_chars": train.HEAD_CHARS, "not_weight": train.NOT_WEIGHT,
                "keep_target": info["keep_target"], "cv_folds": info["cv_folds"], "cv": info["cv"],
                "held_out": {**held_rates, "threshold": measured.threshold,
                             "measured_by": "the same recipe fitted on the training part only"},
                "split": {"rule": f"per label, {HELD_OUT:.0%} held out by sha256 of the ChinaXiv id "
                                  f"(curation.relevance.labels.split)",
                          "train": len(train_part), "held_out": len(held)},
                "source": LABELLED_SOURCE}
        files = label_files(labels)
        lineage = {"inputs": [{"path": f"curation/relevance/labels/{f.name}",
                               "sha256": hashlib.sha256(f.read_bytes()).hexdigest()} for f in files],
                   "annotations": [f"labels:{f.name}" for f in files],
                   "training": {"cv_s": info["cv_s"], "fit_s": info["fit_s"], "train_papers": len(train_part) + len(held)}}
        path = artifact.publish(model, store, meta, lineage=lineage)
    _MEMO[memo] = path
    return path
