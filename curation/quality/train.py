"""Train a fastText binary classifier, deterministically (the quality and relevance classifiers).

``train_classifier(examples, tokenizer="jieba"|"char", seed=0, **fasttext_params)`` returns a
``QualityModel`` whose ``score(texts)`` is P(keep) per text. Training is deterministic: one
thread (``thread=1``), a fixed ``seed`` for fastText, the training file written in a
seed-determined order, and fastText run in a fresh interpreter (in a process that has trained
before it gives other models); same examples + same seed -> same model bytes -> same scores,
however often a process trains.

Why in curation: the build trains the relevance classifier from committed labels
(``curation.relevance``), and curation imports no wing above it; ``annotation.quality.train``
(the quality classifier from review labels) imports it from here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from curation.quality.model import LABEL_DISCARD, LABEL_KEEP, QualityModel
from curation.quality.tokenize import TOKENIZERS, tokenize

# Small defaults on purpose: the default bucket (2M) x dim (100) makes a 800 MB model.bin.
DEFAULT_PARAMS = {
    "lr": 0.5,
    "epoch": 10,
    "wordNgrams": 2,
    "dim": 32,
    "minCount": 1,
    "bucket": 200_000,
    "loss": "softmax",
}


def label_to_int(label) -> int:
    """``keep``/``discard``, ``1``/``0``, ``True``/``False`` (and ``__label__keep``) -> 1/0."""
    if isinstance(label, (bool, np.bool_)):
        return int(label)
    if isinstance(label, (int, np.integer)) and int(label) in (0, 1):
        return int(label)
    if isinstance(label, str):
        s = label.strip().lower().removeprefix("__label__")
        if s in ("keep", "1", "good", "accept"):
            return 1
        if s in ("discard", "0", "bad", "reject", "remove"):
            return 0
    raise ValueError(f"label {label!r}: use 'keep'/'discard' or 1/0")


def _pairs(examples) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    for ex in examples:
        if hasattr(ex, "text") and hasattr(ex, "label"):
            text, label = ex.text, ex.label
        else:
            text, label = ex
        texts.append(str(text))
        labels.append(label_to_int(label))
    return texts, np.asarray(labels, dtype=np.int8)


_TRAIN = (
    "import json, sys, fasttext\n"
    "fasttext.train_supervised(input=sys.argv[1], **json.loads(sys.argv[2])).save_model(sys.argv[3])\n"
)


def _train_in_fresh_process(train_file: Path, args: dict, model_file: Path):
    """fastText training in a new interpreter, then the saved model loaded here.

    The same file and seed with ``thread=1`` gave the same model in a fresh process every time,
    but a different one on every later training in the same process (and "Encountered NaN" once
    the process had freed memory full of random floats): this fastText build depends on the
    state of the process. A fresh interpreter costs ~0.3 s; saving and loading is exact.
    """
    import fasttext

    r = subprocess.run([sys.executable, "-c", _TRAIN, str(train_file), json.dumps(args), str(model_file)],
                       capture_output=True, text=True)
    if r.returncode:
        lines = (r.stderr or "").strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"fastText training failed (exit {r.returncode})")
    return fasttext.load_model(str(model_file))


def train_classifier(examples, tokenizer: str = "jieba", seed: int = 0, **params) -> QualityModel:
    """Train on ``examples``: ``(text, label)`` pairs or objects with ``.text``/``.label``.

    ``params`` override ``DEFAULT_PARAMS`` (any ``fasttext.train_supervised`` keyword);
    ``thread`` is forced to 1 for determinism unless given explicitly.
    """
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {tokenizer!r}; use one of {', '.join(TOKENIZERS)}")
    texts, labels = _pairs(examples)
    if len(set(labels.tolist())) < 2:
        raise ValueError(f"training needs both labels; got {len(texts)} examples, all {'keep' if labels.any() else 'discard'}")
    args = {**DEFAULT_PARAMS, "thread": 1, **params, "seed": int(seed), "verbose": 0}
    order = np.random.RandomState(seed).permutation(len(texts))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cumed-quality-") as tmp:
        path = Path(tmp) / "train.txt"
        with open(path, "w", encoding="utf-8") as f:
            for i in order:
                line = tokenize(texts[i], tokenizer)
                f.write(f"{LABEL_KEEP if labels[i] else LABEL_DISCARD} {line}\n")
        t1 = time.perf_counter()
        # fastText's SGD can diverge ("Encountered NaN"); halving the rate is the documented
        # remedy. The rate actually used is recorded in the model's params.
        for attempt in range(4):
            try:
                ft = _train_in_fresh_process(path, args, Path(tmp) / "model.bin")
                break
            except RuntimeError as e:
                if "NaN" not in str(e) or attempt == 3:
                    raise
                args["lr"] = args["lr"] / 2
    t2 = time.perf_counter()
    args.pop("verbose", None)
    model = QualityModel(ft, tokenizer, {**args, "tokenize_s": round(t1 - t0, 3), "fit_s": round(t2 - t1, 3)})
    return model
