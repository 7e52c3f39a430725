"""A static HTML report for a documents version: Table-1 counts, removal reasons, plots.

One self-contained file (plots are embedded PNGs), so it can be mailed or attached to an issue.
Plots use only ASCII labels: CJK fonts are not guaranteed on every machine that renders them.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc

from cumed.store import DatasetVersion


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def removal_reasons_figure(reasons: dict[str, int]):
    """Documents removed per reason, on a log x axis: dedup removes thousands where a filter
    removes tens, and on a linear axis every reason but the largest was a sliver. Each bar
    carries its count, since a log axis is hard to read off exactly."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(reasons.items(), key=lambda kv: kv[1])
    counts = [v for _, v in items]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(items) + 1))
    bars = ax.barh([k for k, _ in items], counts, color="#c0504d")
    ax.set_xscale("log")
    # the axis starts at 0.5 (a log axis has no 0) so that a count of 1 still shows as a bar;
    # the right margin leaves room for the longest bar's label
    ax.set_xlim(0.5, max(max(counts), 1) * 4)
    ax.bar_label(bars, labels=[f"{v:,}" for v in counts], padding=3, fontsize=8)
    ax.set_xlabel("documents removed (log scale)")
    ax.set_title("Removal reasons")
    return fig


def _plots(dv: DatasetVersion) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = dv.manifest.get("stats") or {}
    plots = {}
    reasons = stats.get("removed_by_reason") or {}
    if reasons:
        plots["removal_reasons"] = _png(removal_reasons_figure(reasons))

    sources = stats.get("sources") or {}
    if sources:
        names = list(sources)
        kept = [sources[n]["kept"] for n in names]
        removed = [sources[n]["removed"] for n in names]
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 1))
        ax.barh(names, kept, color="#4f81bd", label="kept")
        ax.barh(names, removed, left=kept, color="#c0504d", label="removed")
        ax.set_xscale("symlog")
        ax.legend()
        ax.set_title("Documents per source")
        plots["per_source"] = _png(fig)

    lengths = dv.to_arrow(columns=["source", "n_chars"]) if dv.kind == "documents" else None
    if lengths is not None and lengths.num_rows:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for src in pc.unique(lengths.column("source")).to_pylist():
            vals = lengths.filter(pc.equal(lengths.column("source"), src)).column("n_chars").to_numpy()
            ax.hist(vals.clip(1, None), bins=__import__("numpy").logspace(0, 6, 50), histtype="step", label=src)
        ax.set_xscale("log")
        ax.set_xlabel("characters per kept document")
        ax.legend(fontsize=7)
        ax.set_title("Length distribution")
        plots["lengths"] = _png(fig)

    if dv.kind == "conversations":
        turns = dv.to_arrow(columns=["n_turns"]).column("n_turns").to_numpy()
        if len(turns):
            fig, ax = plt.subplots(figsize=(7, 3))
            ax.hist(turns, bins=range(1, int(turns.max()) + 2), color="#4f81bd")
            ax.set_xlabel("messages per dialogue")
            ax.set_title("Dialogue lengths")
            plots["turns"] = _png(fig)
    sizes = duplicate_cluster_sizes(dv) if dv.kind == "documents" else []
    if sizes:
        c = Counter(sizes)
        xs = sorted(c)
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.bar([str(x) for x in xs], [c[x] for x in xs], color="#9bbb59")
        ax.set_xlabel("cluster size (kept + removed duplicates)")
        ax.set_ylabel("clusters")
        ax.set_yscale("log")
        ax.set_title("Duplicate clusters")
        plots["dup_clusters"] = _png(fig)
    return plots


def _agreement(stats: dict) -> str:
    """Review (Krippendorff's alpha, Cohen's kappa) and ranking (Kendall's tau) agreement, if recorded."""
    esc = html.escape
    rows = []
    for batch, b in ((stats.get("manual_review") or {}).get("batches") or {}).items():
        alpha = b.get("krippendorff_alpha")
        kappa = ", ".join(f"{k}: {v:.3f}" for k, v in (b.get("cohen_kappa") or {}).items()) or "n/a"
        rows.append(f"<tr><td>review {esc(batch)}</td><td>{b.get('decisions', '')}</td>"
                    f"<td>alpha {'n/a' if alpha is None else f'{alpha:.3f}'}; kappa {esc(kappa)}</td></tr>")
    for batch, a in (stats.get("agreement") or {}).items():
        shown = {k: v for k, v in (a or {}).items() if not isinstance(v, (list, dict))}
        rows.append(f"<tr><td>ranking {esc(str(batch))}</td><td></td><td>{esc(json.dumps(shown, ensure_ascii=False))}</td></tr>")
    if not rows:
        return ""
    return ("<h2>Annotator agreement</h2><table><tr><th>batch</th><th>decisions</th><th>agreement</th></tr>"
            + "".join(rows) + "</table>")


def _splits(dv: DatasetVersion) -> str:
    if "split" not in (dv.to_arrow().schema.names if dv.rows else []):
        return ""
    counts = Counter(dv.to_arrow(columns=["split"]).column("split").to_pylist())
    return "<h2>Splits</h2><table>" + "".join(f"<tr><td>{html.escape(str(k))}</td><td>{v:,}</td></tr>"
                                              for k, v in sorted(counts.items())) + "</table>"


def duplicate_cluster_sizes(dv: DatasetVersion) -> list[int]:
    removed = dv.to_arrow("removed", columns=["removed_by", "metadata"])
    if not removed.num_rows:
        return []
    dups = removed.filter(pc.equal(removed.column("removed_by"), "dedup"))
    keepers = Counter()
    for meta in dups.column("metadata").to_pylist():
        target = json.loads(meta or "{}").get("duplicate_of")
        if target:
            keepers[target] += 1
    return [n + 1 for n in keepers.values()]


def render(dv: DatasetVersion) -> str:
    m = dv.manifest
    stats = m.get("stats") or {}
    esc = html.escape
    rows = []
    for name, s in (stats.get("sources") or {}).items():
        num = lambda k: f"{s[k]:,}" if isinstance(s.get(k), int) else ""  # noqa: E731 - kinds differ in stats
        mb = f"{s['bytes'] / 1e6:.2f}" if isinstance(s.get("bytes"), int) else ""
        rows.append(
            f"<tr><td>{esc(str(s.get('category', '')))}</td><td>{esc(name)}</td><td>{num('read')}</td><td>{num('kept')}</td>"
            f"<td>{num('removed')}</td><td>{num('chars')}</td><td>{mb}</td><td>{num('tokens')}</td></tr>"
        )
    reasons = "".join(
        f"<tr><td>{esc(k)}</td><td>{v:,}</td></tr>"
        for k, v in sorted((stats.get("removed_by_reason") or {}).items(), key=lambda kv: -kv[1])
    )
    steps = "".join(
        f"<tr><td>{esc(k)}</td><td>{esc(', '.join(f'{a}={b:,}' if isinstance(b, int) else f'{a}={b}' for a, b in v.items()))}</td></tr>"
        for k, v in (stats.get("steps") or {}).items()
    )
    figs = "".join(f'<figure><img alt="{k}" src="{v}"><figcaption>{k}</figcaption></figure>' for k, v in _plots(dv).items())
    lin = m.get("lineage") or {}
    return f"""<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>{esc(dv.ref)}</title>
<style>body{{font-family:system-ui,'Noto Sans CJK SC',sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
td:first-child,td:nth-child(2){{text-align:left}}figure{{display:inline-block;margin:1em}}</style></head><body>
<h1>{esc(dv.ref)}</h1>
<p>kind {esc(dv.kind)} · {dv.rows:,} kept · {dv.removed_rows:,} removed · created {esc(str(m.get('created_at')))}
· content hash <code>{esc(dv.content_hash[:16])}</code></p>
<p>recipe <code>{esc(str((lin.get('recipe') or {}).get('path', '')))}</code> · code {esc(str(lin.get('code_version')))}
· {len(lin.get('inputs') or [])} raw input files hashed · parents {esc(', '.join(lin.get('parents') or []) or 'none')}</p>
<h2>Table 1 (tokens: {esc(str(stats.get('tokenizer', '?')))})</h2>
<table><tr><th>category</th><th>source</th><th>read</th><th>kept</th><th>removed</th><th>chars</th><th>MB</th><th>tokens</th></tr>
{''.join(rows)}</table>
<h2>Removal reasons</h2><table><tr><th>removed by</th><th>documents</th></tr>{reasons}</table>
<h2>Steps</h2><table><tr><th>step</th><th>counters</th></tr>{steps}</table>
{_splits(dv)}
{_agreement(stats)}
<h2>Plots</h2>{figs}
</body></html>"""


def write_report(dv: DatasetVersion, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(dv), encoding="utf-8")
    return out
