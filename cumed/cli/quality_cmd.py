"""``cumed quality train``: the fastText quality classifier from review labels, model-scored labels
(``cumed annotate``) and weak labels; all routes feed one training."""

from __future__ import annotations

import typer

from cumed.store import Store
from cumed.cli.app import JsonOpt, StoreOpt, app, default_raw, emit, out

quality_app = typer.Typer(help="The fastText document-quality classifier.", no_args_is_help=True)
app.add_typer(quality_app, name="quality")


@quality_app.command("train")
def train_cmd(
    batch: list[str] = typer.Option([], "--batch", help="Review batch whose decisions are labels; repeatable."),
    labels: list[str] = typer.Option([], "--labels", help="Labels version (cumed annotate) whose keep/discard are "
                                                          "labels, e.g. cumed-pretrain-quality-labels@1; repeatable."),
    weak: bool = typer.Option(True, "--weak/--no-weak",
                              help="Add weak labels: real doctor answers (keep) vs GPT-distilled answers (discard)."),
    raw: str = typer.Option(None, "--raw", help="Raw data root for weak labels (default: $CUMED_RAW or ../shared/data/raw)."),
    tokenizer: str = typer.Option("jieba", "--tokenizer", help="jieba | char"),
    target_precision: float = typer.Option(0.95, "--target-precision", help="Threshold chosen to reach this precision."),
    seed: int = typer.Option(0, "--seed"),
    store: str = StoreOpt,
    as_json: bool = JsonOpt,
):
    """Train, evaluate on held-out labels and publish a versioned model (store/_models/quality/vN).

    Examples: cumed quality train --batch cumed-pretrain.r001 --target-precision 0.95;
    cumed quality train --labels cumed-pretrain-quality-labels@1 --no-weak
    """
    from annotation.quality.model_labels import label_examples
    from annotation.quality.review_labels import review_examples
    from annotation.quality.weak_labels import load_weak_labels, source_lineage
    from annotation.quality.workflow import train_and_publish

    from cumed.errors import CumedError

    st = Store(store)
    examples, lineage = [], {}
    if batch:
        ex, lin = review_examples(st, batch)
        examples += ex
        lineage["review"] = lin
    if labels:
        ex, lin = label_examples(st, labels)
        examples += ex
        lineage["labels"] = lin
    if weak:
        root = raw or default_raw()
        examples += load_weak_labels(root)
        lineage["weak_labels"] = source_lineage(root)
    if not examples:
        raise CumedError("no labels: give --batch with pulled review decisions, --labels with a labels version, "
                         "or keep --weak")
    try:
        path, metrics = train_and_publish(st, examples, lineage=lineage, tokenizer=tokenizer, seed=seed,
                                          target_precision=target_precision)
    except ValueError as e:  # one label only, or no threshold reaching the precision: say so, no traceback
        raise CumedError(f"quality train on {len(examples)} labelled texts: {e}") from None
    res = {"model": str(path), "threshold": metrics.get("threshold"), "metrics": metrics,
           "examples": len(examples), "sources": sorted({e.source for e in examples})}

    def human():
        m = metrics
        out.print(f"published {path}")
        out.print(f"held-out: precision {m['precision']:.3f} recall {m['recall']:.3f} F1 {m['f1']:.3f} "
                  f"ROC-AUC {m['roc_auc']:.3f} (majority baseline accuracy {m['majority_baseline_accuracy']:.3f})")
        at = m.get("at_threshold") or {}
        if at:
            out.print(f"threshold for precision >= {target_precision}: precision {at['precision']:.3f}, recall {at['recall']:.3f}")
        out.print("apply it in a recipe: steps: {quality: {artifact: quality@latest}}")

    emit(res, as_json, human)
