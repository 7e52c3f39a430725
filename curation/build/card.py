"""The dataset card of a documents build (README.md of the version), and the decontamination
section that the conversations card (``curation.sft.build``) shares.

The card is not part of a version's content hash (``cumed.store.manifest.content_hash``: kind,
schema and the data files only): changing its text never changes a published hash."""

from __future__ import annotations

import inspect

from curation.recipe import Recipe

# The single-span rule's cost on the seed (curation/steps/decontaminate.py's docstring; re-measured
# for BENCHMARKS.md, "Dedup on the planted set and the decontamination rule (issue 17)").
SINGLE_SPAN_COST = (
    "Why the coverage rule is the default: under the single-span rule 1,368 of the 7,644 real Toyhom "
    "consultations (17.9 %, the \"18 %\" of issue #17) share at least one 20-character span with the Huatuo-26M "
    "test set or the DISC-MedLLM evaluation answers: stock sentences that doctors of the same consultation sites "
    "paste (`建议患者在日常生活中要留意饮食并且要始终保持…`), runs of 20-45 spans. The coverage rule removes 2 of "
    "them (one shares a 150-character paragraph with Huatuo-26M item 1408). Measured on the seed with the default "
    "evaluation sets and n = 20 (`curation/steps/decontaminate.py`; BENCHMARKS.md, \"Dedup on the planted set and "
    "the decontamination rule (issue 17)\")."
)


def decontamination_defaults() -> dict:
    """The ``Decontaminate`` step's own defaults (read from its signature, never restated)."""
    from curation.steps.decontaminate import DEFAULT_SETS, Decontaminate

    sig = inspect.signature(Decontaminate.__init__).parameters
    out = {k: sig[k].default for k in ("n", "max_items_per_span", "min_spans", "min_coverage")}
    out["eval_sets"] = list(DEFAULT_SETS)
    return out


def decontamination_rule(options: dict | None) -> str:
    """One sentence: the rule a ``decontaminate`` step with these recipe options applies."""
    o = {**decontamination_defaults(), **(options or {})}
    n, spans, cover = o["n"], o["min_spans"], o["min_coverage"]
    what = f"{n}-character spans of the canonical text (NFKC, Simplified script, no punctuation or whitespace)"
    if spans is None and cover is None:
        rule = (f"**strict (single span)**: a document is removed when it shares any one {what} with an "
                f"evaluation item (`min_spans: null, min_coverage: null`)")
    elif cover is None:
        rule = (f"**shared spans only**: a document is removed when it shares at least {spans} distinct {what} "
                f"with one evaluation item (`min_coverage: null`)")
    elif spans is None:
        rule = (f"**item coverage only**: a document is removed when it contains at least {cover:g} of one "
                f"evaluation item's distinct {what} (`min_spans: null`; not the strict rule: a pasted passage "
                f"that covers less than {cover:g} of a long item stays)")
    else:
        rule = (f"**coverage rule**: a document is removed when it shares with one evaluation item at least "
                f"{spans} distinct {what} (a shared run of about {spans + n} characters) or at least {cover:g} "
                f"of that item's spans (a short item pasted whole)")
    if o.get("max_items_per_span") is not None:
        rule += f"; a span found in more than {o['max_items_per_span']} items is template text and does not count"
    return rule + "."


def decontamination_section(options: dict | None, removed: dict[str, int]) -> list[str]:
    """The card's "Decontamination" section: the sets, the rule with this recipe's values, why the
    coverage rule is the default, how to ask for the strict rule, and this build's removals."""
    o = {**decontamination_defaults(), **(options or {})}
    sets = o["eval_sets"] if isinstance(o["eval_sets"], (list, tuple)) else list(o["eval_sets"])
    lines = ["## Decontamination", "",
             f"Evaluation sets: {', '.join(sets)}. Rule: {decontamination_rule(options)}", "",
             SINGLE_SPAN_COST + " The strict rule is `decontaminate: {min_spans: null, min_coverage: null}` "
             "in the recipe.", ""]
    if o.get("near_threshold"):
        lines += [f"Near-copies of an item (the near-duplicate check at threshold {o['near_threshold']:g}, "
                  f"the item as a reference document: `dedup.verify`, default coverage) are removed too "
                  f"(`eval_near_copy`).", ""]
    total = sum(removed.values())
    detail = ", ".join(f"{k} {v:,}" for k, v in sorted(removed.items())) if removed else "none"
    lines += [f"This build: {total:,} removed ({detail}).", ""]
    return lines


def removed_by(stats: dict, step: str) -> dict[str, int]:
    """``{reason code: rows}`` of one step from ``stats["removed_by_reason"]`` (``step:reason`` or
    ``step/reason`` codes)."""
    return {k: v for k, v in stats.get("removed_by_reason", {}).items()
            if k == step or k.startswith((f"{step}:", f"{step}/"))}


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
    if recipe.step("decontaminate") is not None:
        lines += [""] + decontamination_section(recipe.step("decontaminate"), removed_by(stats, "decontaminate"))[:-1]
    lines += ["", f"Recipe: `{recipe.lineage()['path']}` (sha256 `{recipe.sha256[:16]}`)", ""]
    return "\n".join(lines)


