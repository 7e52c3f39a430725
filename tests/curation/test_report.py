"""`cumed report` renders every dataset kind, with agreement when a review recorded it."""

from __future__ import annotations

import pyarrow as pa

from curation.report import render
from cumed.store import Store
from tests.curation.test_store import docs_table


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
