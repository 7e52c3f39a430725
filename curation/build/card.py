"""The dataset card of a documents build (README.md of the version)."""

from __future__ import annotations

from curation.recipe import Recipe


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
    lines += ["", f"Recipe: `{recipe.lineage()['path']}` (sha256 `{recipe.sha256[:16]}`)", ""]
    return "\n".join(lines)


