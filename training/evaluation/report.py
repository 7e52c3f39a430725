"""Static HTML report of judge results: win/draw/loss stacked bars per dimension.

Input: the JSON written by ``cumed eval judge --json`` (one result) or a list of them (one row per
comparison). The chart is a matplotlib PNG embedded as base64 (no external files); chart labels
are ASCII so no CJK font is needed. Metrics results (``cumed eval metrics --json``) in the list are
shown as a table.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from cumed.errors import CumedError

from training.evaluation.judge import DIMENSIONS


def _ascii(s) -> str:
    return str(s).encode("ascii", "replace").decode("ascii")


def _label(res: dict) -> str:
    return _ascii(f"{res.get('model_a', 'A')} vs {res.get('model_b', 'B')} ({res.get('bench', '?')})")


def bars_png(results: list[dict], key: str = "summary") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(f"{_label(r)} / {d}", r[key][d]) for r in results for d in DIMENSIONS]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    names = [n for n, _ in rows][::-1]
    counts = [c for _, c in rows][::-1]
    left = [0.0] * len(rows)
    for part, color in (("win", "#4caf50"), ("draw", "#bdbdbd"), ("loss", "#e57373")):
        vals = []
        for c in counts:
            tot = c["win"] + c["draw"] + c["loss"]
            vals.append(100.0 * c[part] / tot if tot else 0.0)
        ax.barh(names, vals, left=left, color=color, label=part)
        for i, v in enumerate(vals):
            if v >= 6:
                ax.text(left[i] + v / 2, i, f"{v:.0f}%", ha="center", va="center", fontsize=8)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of valid items (A's win / draw / loss)")
    ax.legend(loc="lower right", ncol=3, fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def render_html(data) -> str:
    results = data if isinstance(data, list) else [data]
    judged = [r for r in results if isinstance(r, dict) and "summary" in r]
    metrics = [r for r in results if isinstance(r, dict) and "metrics" in r]
    if not judged and not metrics:
        raise CumedError("results file holds neither judge results (a 'summary') nor metrics; give the JSON "
                         "written by 'cumed eval judge --json' or 'cumed eval metrics --json'")
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>cumed evaluation</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}</style></head><body>",
             "<h1>cumed evaluation report</h1>"]
    if judged:
        png = base64.b64encode(bars_png(judged)).decode("ascii")
        parts.append("<h2>Pairwise judge (both orders; an order-dependent verdict is a draw)</h2>")
        parts.append(f"<img alt='win/draw/loss per dimension' src='data:image/png;base64,{png}'>")
        parts.append("<table><tr><th>comparison</th><th>judge</th><th>dimension</th><th>win</th><th>draw</th>"
                     "<th>loss</th><th>valid</th><th>invalid</th><th>requests</th><th>tokens</th><th>cost</th></tr>")
        for r in judged:
            s, st, u = r["summary"], r.get("stats", {}), r.get("usage", {})
            for d in DIMENSIONS:
                parts.append(f"<tr><td>{e(_label(r))}</td><td>{e(str(r.get('judge_model')))}</td><td>{d}</td>"
                             f"<td>{s[d]['win']}</td><td>{s[d]['draw']}</td><td>{s[d]['loss']}</td>"
                             f"<td>{s['n_valid']}</td><td>{s['n_invalid']}</td><td>{st.get('requests', '')}</td>"
                             f"<td>{u.get('total_tokens', '')}</td><td>{u.get('cost', '')}</td></tr>")
        parts.append("</table>")
        for r in judged:
            if r.get("invalid"):
                parts.append(f"<h3>Invalid items: {e(_label(r))}</h3><ul>")
                parts.extend(f"<li>{e(str(x['id']))}: {e(str(x['reason']))}</li>" for x in r["invalid"])
                parts.append("</ul>")
    if metrics:
        parts.append("<h2>Reference metrics</h2><table><tr><th>bench</th><th>model</th><th>subset</th><th>n</th>"
                     "<th>BLEU</th><th>ROUGE-L F</th><th>length</th><th>distinct-1</th><th>distinct-2</th></tr>")
        for r in metrics:
            for model, per in r["metrics"].items():
                for subset, m in per.items():
                    rl = m["rouge_l"]["f"] if m.get("rouge_l") else None
                    parts.append(f"<tr><td>{e(str(r.get('bench')))}</td><td>{e(model)}</td><td>{subset}</td><td>{m['n']}</td>"
                                 f"<td>{'' if m['bleu'] is None else format(m['bleu'], '.2f')}</td>"
                                 f"<td>{'' if rl is None else f'{rl:.4f}'}</td><td>{m['length_mean']:.1f}</td>"
                                 f"<td>{m['distinct_1']:.4f}</td><td>{m['distinct_2']:.4f}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(results_path: str | Path, out: str | Path) -> Path:
    p = Path(results_path)
    if not p.is_file():
        raise CumedError(f"results file {p} not found; write one with 'cumed eval judge ... --json > {p.name}'")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except ValueError as ex:
        raise CumedError(f"{p} is not JSON ({ex})") from ex
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(data), encoding="utf-8")
    return out
