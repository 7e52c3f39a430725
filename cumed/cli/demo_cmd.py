"""``cumed demo``: the main job end to end on embedded defaults."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cumed.cli.app import JsonOpt, StoreOpt, app, default_raw, emit, out
from cumed.cli.build_cmd import build_recipe, print_table1
from cumed.recipes import find_recipe
from cumed.store import Store
from curation.report import write_report


@app.command("demo")
def demo_cmd(
    raw: str = typer.Option(None, "--raw", help="Raw data root (default: $CUMED_RAW or ../shared/data/raw)."),
    store: str = StoreOpt,
    workers: int = typer.Option(2, "--workers", help="Parallel tasks."),
    as_json: bool = JsonOpt,
):
    """Build the pretraining corpus from the raw sources and publish it.

    Example: cumed demo --raw ../shared/data/raw --store ./store
    """
    st = Store(store)
    # The three recipes in datasets/, each through the one road every recipe takes (cumed build).
    dv, stats = build_recipe(find_recipe("cumed-pretrain"), raw or default_raw(), st, workers=workers,
                             progress=not as_json)
    result = {"pretrain": {"ref": dv.ref, "path": str(dv.path), "rows": dv.rows, "removed_rows": dv.removed_rows}}
    sft, sft_stats = build_recipe(find_recipe("cumed-sft"), raw or default_raw(), st, workers=workers,
                                  progress=not as_json)
    result["sft"] = {"ref": sft.ref, "path": str(sft.path), "rows": sft.rows, "removed_rows": sft.removed_rows,
                     "splits": (sft_stats.get("splits") or {}).get("rows")}
    prefs, prefs_stats = build_recipe(find_recipe("cumed-rm"), raw or default_raw(), st, progress=not as_json)
    rankings_ref, prefs_ref = prefs_stats["rankings"], prefs.ref
    result["rm"] = {"rankings": rankings_ref, "preferences": prefs_ref, "pairs": prefs.rows}
    # Every training stage for a few steps on a tiny model built from a config (CPU, ~15 s).
    from training.demo import demo_training

    result["training"] = demo_training(st, dv.ref, sft.ref, prefs_ref, steps=5, progress=not as_json)
    # Before/after: the SFT checkpoint against the pretrained one it started from, same prompts.
    from training.evaluation.compare import compare_checkpoints
    from training.evaluation.report import write_report as write_eval_report

    tr = result["training"]
    comparison = compare_checkpoints(tr["sft"]["final"], tr["pretrain"]["final"], tr["tokenizer"], raw or default_raw(),
                                     n=8, max_new_tokens=24, names=("sft", "pretrain"))
    eval_json = Path("reports") / "eval-sft-vs-pretrain.json"
    eval_json.parent.mkdir(parents=True, exist_ok=True)
    eval_json.write_text(json.dumps(comparison, ensure_ascii=False, indent=1), encoding="utf-8")
    result["evaluation"] = {"results": str(eval_json),
                            "report": str(write_eval_report(eval_json, Path("reports") / "eval-sft-vs-pretrain.html"))}
    report = write_report(dv, Path("reports") / f"{dv.name}-v{dv.version}.html")
    result["report"] = str(report)

    # A first review batch on the embedded file queue (no server needed).
    from annotation.review.file_backend import FileBackend
    from annotation.review.queue import push

    from annotation.review.queue import ReviewState

    state = ReviewState(st, dv.name)
    done = [b for b in state.batches() if state.batch(b).get("state") == "pushed"]
    if done:  # a re-run of the demo shows the batch it made before instead of queueing 20 more
        info = state.batch(done[0])
        batch = {"batch": info["batch"], "ref": info["ref"], "backend": "file", "tasks": len(info["doc_ids"]),
                 "resumed": True, **info.get("push", {})}
    else:
        batch = push(st, dv.ref, 20, lambda d: FileBackend(d), strategy="stratified", seed=0)
    result["review"] = batch

    def human():
        print_table1(dv.ref, stats)
        out.print(f"\n[bold green]published[/] {dv.ref} -> {dv.path}")
        out.print(f"inspect: cumed datasets show {dv.ref} --store {st.root}")
        out.print(f"report:  {report}")
        out.print(f"\n[bold green]published[/] {sft.ref} -> {sft.path}: {sft.rows:,} urology/andrology dialogues "
                  f"(splits {result['sft']['splits']}), {sft.removed_rows:,} removed with reasons")
        out.print(f"[bold green]published[/] {rankings_ref} (DISC-MedLLM rankings by GPT-4 score) and "
                  f"{prefs_ref}: {prefs.rows:,} adjacent preference pairs")
        tr = result["training"]
        out.print("\n[bold]training[/] (tiny LLaMA built from a config, CPU, a few steps per stage):")
        for stage in ("pretrain", "sft", "rm", "rs"):
            r = tr.get(stage)
            if isinstance(r, dict) and "first_loss" in r:
                out.print(f"  {stage:8s} {r.get('dataset', '')}: {r.get('steps')} steps, loss {r['first_loss']:.3f} -> "
                          f"{r['last_loss']:.3f}, run {r.get('run')}")
            elif r is not None:
                out.print(f"  {stage:8s} " + json.dumps(r, ensure_ascii=False, default=str)[:200])
        out.print(f"\n[bold]review[/] batch {batch['batch']}: {batch['tasks']} documents queued "
                  f"(stratified by source and category)")
        out.print(f"  tasks (Label Studio import JSON): {batch.get('tasks_file', '')}")
        out.print(f"  labeling config:                 {batch.get('config_file', '')}")
        out.print("  review them in Label Studio (cumed labelstudio start, or any server), export JSON, then")
        out.print(f"  cumed review pull {batch['batch']} --from EXPORT.json && cumed review apply {dv.ref} --batch {batch['batch']}")
        ev = comparison["metrics"]
        out.print("\n[bold]evaluation[/] (Huatuo-26M test, urology subset, 8 prompts; tiny models, so the numbers are plumbing):")
        for name, per in ev.items():
            m = per["all"]
            rl = "-" if m["rouge_l"] is None else f"{m['rouge_l']['f']:.4f}"
            out.print(f"  {name:9s} ROUGE-L {rl}  length {m['length_mean']:.1f}  distinct-2 {m['distinct_2']:.3f}")
        out.print(f"\n[bold green]corpus report[/]:     {report}")
        out.print(f"[bold green]evaluation report[/]: {result['evaluation']['report']}")

    emit(result, as_json, human)
