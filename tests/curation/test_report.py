"""`cumed report` renders every dataset kind, with agreement when a review recorded it."""

from __future__ import annotations

import pyarrow as pa

from curation.report import removal_reasons_figure, render
from cumed.store import Store
from tests.cumed.test_store import docs_table


def test_report_for_every_kind(tmp_path):
    st = Store(tmp_path)
    docs = st.publish("docs", docs_table(20), stats={
        "sources": {"toyhom_csv": {"category": "qa", "read": 20, "kept": 20, "removed": 0, "chars": 100, "bytes": 300,
                                   "tokens": 90}},
        "manual_review": {"batches": {"docs.r001": {"decisions": 12, "krippendorff_alpha": 0.61,
                                                    "cohen_kappa": {"a|b": 0.58}}}}})
    conv = st.publish("conv", pa.table({
        "id": ["c1", "c2"], "source": ["s", "s"], "department": ["泌尿外科", ""], "n_turns": [2, 4],
        "split": ["train", "test"],
        "messages": [[{"role": "user", "content": "尿频"}, {"role": "assistant", "content": "多喝水"}]] * 2}),
        kind="conversations", stats={"sources": {"s": {"read": 2, "kept": 2, "removed": 0}}})
    prefs = st.publish("prefs", pa.table({
        "prompt_id": ["p1"], "prompt": ["问"], "chosen": ["好"], "rejected": ["差"], "chosen_rank": [1],
        "rejected_rank": [2], "margin": [1.0], "split": ["train"]}), kind="preferences")
    html = render(docs)
    assert "Annotator agreement" in html and "alpha 0.610" in html and "a|b: 0.580" in html
    assert html.count("data:image/png;base64,") >= 2
    conv_html = render(conv)
    assert "Dialogue lengths" in conv_html or "turns" in conv_html
    assert "<td>test</td><td>1</td>" in conv_html and "<td>train</td><td>1</td>" in conv_html
    assert "prefs@1" in render(prefs)


def test_removal_reasons_on_a_log_axis(tmp_path):
    """dedup removes thousands, a filter tens: on a linear axis every other reason was a sliver."""
    reasons = {"dedup": 4873, "length:too_short": 42, "mojibake": 3, "pii": 1}
    fig = removal_reasons_figure(reasons)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlim()[0] < 1 < 4873 < ax.get_xlim()[1]  # a count of 1 is still a bar; the largest fits
    assert [t.get_text() for t in ax.get_yticklabels()] == ["pii", "mojibake", "length:too_short", "dedup"]
    assert [t.get_text() for t in ax.texts] == ["1", "3", "42", "4,873"]  # counts, readable off a log axis
    import matplotlib.pyplot as plt

    plt.close(fig)
    dv = Store(tmp_path).publish("docs", docs_table(5), stats={"removed_by_reason": reasons})
    assert '<img alt="removal_reasons" src="data:image/png;base64,' in render(dv)
