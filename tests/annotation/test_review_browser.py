"""The review form in a real browser (headless Chromium via Playwright, system ``chromium``) against
the session Label Studio server:

(a) a task whose text is a 20,000-character document: the decision choices and the Submit button are
    inside the first viewport, without scrolling (the document scrolls in its own box);
(b) "discard" without a reason: Label Studio refuses the submit with the form's message and stores
    no annotation (checked through the API); with a reason it is accepted. "keep" needs no reason
    (the reason is required only while it is shown);
and the decisions come back through ``cumed review pull BATCH`` without ``--backend``: the batch knows
it was pushed to Label Studio, and where.

DOM used (Label Studio 1.23.2): choices are found by their visible text (the ``value`` of each
``<Choice>``), the submit button by role=button name "Submit", the refusal by the modal's text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa

from annotation.labelstudio.server import read_env_file
from annotation.review.config import DECISIONS, REASONS
from annotation.review.queue import ReviewState, push
from cumed.store import Store
from tests.browser import assert_not_blank, browser, cjk_font_installed, in_viewport, login

PARAGRAPH = ("前列腺增生是中老年男性常见疾病，主要表现为尿频、尿急、夜尿增多及排尿困难。"
             "诊断依赖直肠指诊、前列腺特异抗原检测和泌尿系超声，治疗包括观察等待、药物治疗与手术。")
VIEWPORT = {"width": 1366, "height": 768}  # a common laptop screen
REFUSAL = "A discard needs a reason"  # the reason's requiredMessage (annotation/review/config.py)


def long_document(n_chars: int = 20_000) -> str:
    head, tail = "【摘要】本文为长篇论文全文（ChinaXiv 样例）。", "【全文完】"
    body = (PARAGRAPH * (n_chars // len(PARAGRAPH) + 1))[: n_chars - len(head) - len(tail)]
    return head + body + tail


def docs(texts: list[str]) -> pa.Table:
    n = len(texts)
    return pa.table({
        "id": [f"doc-long-{i}" for i in range(n)], "text": texts, "source": ["chinaxiv"] * n,
        "category": ["paper"] * n, "department": ["泌尿外科"] * n, "n_chars": [len(t) for t in texts],
        "metadata": [json.dumps({"quality_score": 0.5})] * n})


def annotations_of(backend, task_id: int) -> list:
    return list(backend.client.annotations.list(id=task_id))


def test_review_form_long_document_and_required_reason(ls_server, backend_factory, dataset, tmp_path):
    env = read_env_file(ls_server.env_file)
    url = env["LABEL_STUDIO_URL"].rstrip("/")
    store = Store(tmp_path / "store")
    long_text, short_text = long_document(), "患者男，60岁，夜尿三次，前列腺特异抗原 2.1ng/ml。"
    assert len(long_text) == 20_000
    store.publish(dataset, docs([long_text, short_text]))
    b = backend_factory()
    res = push(store, f"{dataset}@1", 2, lambda d: b, seed=0)
    assert res["pushed"] == 2 and res["backend"] == "labelstudio"
    by_doc = {t["data"]["doc_id"]: t["id"] for t in b.pull(res["batch"], dataset)}
    long_id, short_id = by_doc["doc-long-0"], by_doc["doc-long-1"]

    posted: list[str] = []
    with browser() as br:
        page = br.new_page(viewport=VIEWPORT, locale="zh-CN")
        page.set_default_timeout(60_000)
        page.on("request", lambda r: posted.append(r.url) if r.method == "POST" and "/annotations" in r.url else None)
        login(page, url, env["LABEL_STUDIO_USERNAME"], env["LABEL_STUDIO_PASSWORD"])

        # (a) the long document: controls in the first viewport
        page.goto(f"{url}/projects/{res['project']}/data?task={long_id}")
        keep, discard = page.get_by_text(DECISIONS["keep"]), page.get_by_text(DECISIONS["discard"])
        discard.wait_for()
        document = page.locator(".lsf-richtext__line", has_text="【全文完】")  # the whole text, one element
        document.wait_for()
        page.wait_for_timeout(1000)  # layout settles (fonts, panels)
        submit = page.get_by_role("button", name="Submit")
        shot = tmp_path / "review-long-document.png"
        page.screenshot(path=str(shot))  # the viewport only: what the annotator sees first
        boxes = {"keep": keep.bounding_box(), "discard": discard.bounding_box(), "submit": submit.bounding_box()}
        assert all(in_viewport(box, VIEWPORT) for box in boxes.values()), boxes
        # the document really is longer than the screen: it scrolls inside its own box
        text_box = document.bounding_box()
        assert text_box["y"] + text_box["height"] > 3 * VIEWPORT["height"], text_box
        scroll = page.evaluate("""() => { const el = [...document.querySelectorAll('*')].find(e =>
            (e.textContent || '').includes('【全文完】') && e.scrollHeight > e.clientHeight + 100
            && ['auto', 'scroll'].includes(getComputedStyle(e).overflowY));
            return el ? [el.scrollHeight, el.clientHeight] : null; }""")
        assert scroll, "the document is not in a scrollable box"
        # the reason is not offered before "discard" is chosen
        assert not page.get_by_text(REASONS["privacy"]).is_visible()

        # (b) discard without a reason: refused, nothing stored
        discard.click()
        reason = page.get_by_text(REASONS["privacy"])
        reason.wait_for()
        assert in_viewport(reason.bounding_box(), VIEWPORT)  # the reasons appear in the panel, on screen
        submit.click()
        refusal = page.get_by_text(REFUSAL)
        refusal.wait_for()
        page.wait_for_timeout(1500)  # the modal fades in; and a late POST would show up meanwhile
        page.screenshot(path=str(tmp_path / "review-refused.png"))
        assert not [u for u in posted if f"/tasks/{long_id}/annotations" in u], posted
        assert annotations_of(b, long_id) == []

        # with a reason it is accepted
        page.get_by_role("button", name="OK").click()
        refusal.wait_for(state="hidden")
        reason.click()
        page.screenshot(path=str(tmp_path / "review-with-reason.png"))
        with page.expect_response(lambda r: r.request.method == "POST"
                                  and f"/api/tasks/{long_id}/annotations" in r.url) as resp:
            submit.click()
        assert resp.value.ok, resp.value.status
        stored = {r["from_name"]: r["value"]["choices"] for r in resp.value.json()["result"]}
        assert stored == {"decision": ["discard"], "reason": ["privacy"]}, stored

        # keep needs no reason: the hidden, required reason does not block the submit
        page.goto(f"{url}/projects/{res['project']}/data?task={short_id}")
        keep = page.get_by_text(DECISIONS["keep"])
        keep.wait_for()
        page.locator(".lsf-richtext__line", has_text="夜尿三次").wait_for()
        keep.click()
        with page.expect_response(lambda r: r.request.method == "POST"
                                  and f"/api/tasks/{short_id}/annotations" in r.url) as resp:
            page.get_by_role("button", name="Submit").click()
        assert resp.value.ok, resp.value.status
        assert [r["value"]["choices"] for r in resp.value.json()["result"]] == [["keep"]]

    info = assert_not_blank(shot)
    assert cjk_font_installed() is not False, "no CJK font: install fonts-noto-cjk so the Chinese is readable"
    assert len(annotations_of(b, long_id)) == 1

    # (d) the CLI pulls the batch from the server it was pushed to: no --backend, no URL
    envp = {k: v for k, v in os.environ.items() if not k.startswith("LABEL_STUDIO_")}
    envp["LABEL_STUDIO_API_KEY"] = env["LABEL_STUDIO_API_KEY"]
    p = subprocess.run([sys.executable, "-c", "from cumed.cli import main; main()", "review", "pull", res["batch"],
                        "--store", str(store.root), "--json"], capture_output=True, text=True, timeout=300,
                       env=envp, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert (out["new_decisions"], out["problems"]) == (2, []), out
    got = {d.doc_id: (d.decision, d.reason) for d in ReviewState(store, dataset).decisions(res["batch"])}
    assert got == {"doc-long-0": ("discard", "privacy"), "doc-long-1": ("keep", "")}
    print(f"review form: controls {boxes}, text box scroll {scroll}, screenshot {info}")
