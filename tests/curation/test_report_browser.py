"""The corpus HTML report (``curation.report.render``) in headless Chromium (system ``chromium``
via Playwright): it renders, its Chinese and its plots show, and the screenshot is not blank."""

from __future__ import annotations

from curation.report import write_report
from cumed.store import Store
from tests.browser import assert_not_blank, browser
from tests.cumed.test_store import docs_table


def test_corpus_report_renders_in_chromium(tmp_path):
    st = Store(tmp_path / "store")
    dv = st.publish("docs", docs_table(30), stats={
        "sources": {"toyhom_csv": {"category": "qa", "read": 25, "kept": 20, "removed": 5, "chars": 900,
                                   "bytes": 2700, "tokens": 800},
                    "cmekg": {"category": "知识图谱 knowledge_graph", "read": 10, "kept": 10, "removed": 0, "chars": 400,
                              "bytes": 1200, "tokens": 350}},
        "removed_by_reason": {"dedup_exact": 3, "min_chars": 2}})
    report = write_report(dv, tmp_path / "report.html")
    with browser() as br:
        page = br.new_page(viewport={"width": 1200, "height": 900}, locale="zh-CN")
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        assert page.title() == dv.ref
        assert page.locator("h1").inner_text() == dv.ref
        table1 = page.locator("table").first.inner_text()
        assert "toyhom_csv" in table1 and "知识图谱" in table1
        # every embedded plot decoded (a broken data: URI has naturalWidth 0)
        widths = page.eval_on_selector_all("figure img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        assert widths and all(w > 0 for w in widths), widths
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
    info = assert_not_blank(shot)
    print(f"report screenshot {info}")
