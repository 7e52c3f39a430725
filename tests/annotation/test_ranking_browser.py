"""The ranking interface in a real browser: headless Chromium (Playwright, system ``chromium``)
logs in to the session Label Studio server through its login form, opens a pushed ranking task,
reorders the answers by dragging a card, submits, and the stored result comes back through
``cumed``'s pull path as exactly the order on screen.

DOM used (Label Studio 1.23.2, react-beautiful-dnd): the ``<List>``'s cards are
``[data-rbd-droppable-id="rank"] .htx-ranker-item[data-ranker-id=<response id>]``; the submit
button is the role=button named "Submit". Dragging is real mouse down / stepped move / up (rbd
starts a drag only after the pointer has moved a few pixels while pressed). The per-dimension
ratings are ``ul.ant-rate`` (antd); their labels are ``<Text>`` tags (``.lsf-richtext__line``).
"""

from __future__ import annotations

import time

import pyarrow as pa

from annotation.labelstudio.server import read_env_file
from annotation.ranking.config import DIMENSIONS
from annotation.ranking.importers import RANKINGS_SCHEMA
from annotation.ranking.queue import pull, push
from annotation.ranking.validate import parse_tasks
from cumed.store import Store
from tests.browser import assert_not_blank, browser, cjk_font_installed, login, y_overlap

PROMPT = "医生您好，我最近尿频尿急，晚上起夜三四次，需要做什么检查？"
ANSWERS = {
    "doctor": "建议先做尿常规和泌尿系超声，必要时查前列腺特异抗原（PSA），明确病因后再用药。",
    "gpt-4": "尿频尿急可能与尿路感染或前列腺增生有关，请尽快到泌尿外科就诊。",
    "gpt-3.5-turbo": "多喝水，少吃辛辣食物，注意休息，一般会自己好转。",
    "deepseek": "可以先观察一周，如果出现发热或血尿要立即就医。",
}
CARDS = '[data-rbd-droppable-id="rank"] .htx-ranker-item'


def one_prompt_table() -> pa.Table:
    responses = [{"response_id": f"x{j}", "text": t, "model": m} for j, (m, t) in enumerate(ANSWERS.items())]
    return pa.Table.from_pylist([{
        "prompt_id": "p-browser", "prompt": PROMPT, "responses": responses,
        "ranking": [[r["response_id"]] for r in responses], "annotator": "import", "batch": "import",
        "scores": "", "method": "source_order", "seed": 0, "order": [r["response_id"] for r in responses],
        "source": "test", "department": "泌尿外科"}], schema=RANKINGS_SCHEMA)


def card_order(page) -> list[str]:
    return page.eval_on_selector_all(CARDS, "els => els.map(e => e.getAttribute('data-ranker-id'))")


def drag(page, source, target_y: float) -> None:
    """Press on ``source`` (its title bar), move in small steps to ``target_y``, release."""
    box = source.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + 12
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, y - 8, steps=4)  # past rbd's sloppy-click threshold: the drag starts
    page.wait_for_timeout(200)
    page.mouse.move(x, target_y, steps=25)
    page.wait_for_timeout(400)  # let the other cards animate out of the way
    page.mouse.up()


def test_rank_by_dragging_in_browser(ls_server, backend_factory, dataset, tmp_path):
    env = read_env_file(ls_server.env_file)
    url = env["LABEL_STUDIO_URL"].rstrip("/")
    st = Store(tmp_path / "s")
    st.publish(dataset, one_prompt_table(), kind="rankings")
    b = backend_factory(task_type="ranking")  # LabelStudioBackend(task_type="ranking", token_file=env file)
    res = push(st, f"{dataset}@1", 1, lambda d: b, k=4, seed=11)
    assert res["pushed"] == 1
    [task] = b.pull(res["batch"], dataset)
    shown = [r["id"] for r in task["data"]["responses"]]  # the shuffled display order, opaque ids
    assert len(shown) == 4 and not task["annotations"]

    timings = {}
    t0 = time.monotonic()
    with browser() as br:
        page = br.new_page(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
        page.set_default_timeout(60_000)
        login(page, url, env["LABEL_STUDIO_USERNAME"], env["LABEL_STUDIO_PASSWORD"])  # the real login form
        timings["login_s"] = round(time.monotonic() - t0, 1)

        page.goto(f"{url}/projects/{res['project']}/data?task={task['id']}")
        page.wait_for_function(f"document.querySelectorAll('{CARDS}').length === 4")
        page.locator(CARDS).get_by_text(ANSWERS["doctor"]).wait_for()  # the Chinese answer is on a card
        assert card_order(page) == shown
        page.screenshot(path=str(tmp_path / "before.png"))

        # drag the last card above the first one
        cards = page.locator(CARDS)
        first_top = cards.nth(0).bounding_box()["y"]
        drag(page, cards.nth(3), first_top + 4)
        expected = [shown[3], *shown[:3]]
        page.wait_for_function(
            "([sel, want]) => JSON.stringify([...document.querySelectorAll(sel)]"
            ".map(e => e.getAttribute('data-ranker-id'))) === JSON.stringify(want)",
            arg=[CARDS, expected], timeout=15_000)
        assert card_order(page) == expected

        shot = tmp_path / "ranked.png"
        page.screenshot(path=str(shot), full_page=True)
        with page.expect_response(lambda r: r.request.method == "POST"
                                  and f"/api/tasks/{task['id']}/annotations" in r.url) as posted:
            page.get_by_role("button", name="Submit").click()
        assert posted.value.ok, posted.value.status
        stored_by_ui = posted.value.json()
        timings["browser_s"] = round(time.monotonic() - t0, 1)

    info = assert_not_blank(shot)
    assert cjk_font_installed() is not False, "no CJK font: install fonts-noto-cjk so the Chinese is readable"

    # what the server stored for the submit
    rank = [r for r in stored_by_ui["result"] if r["from_name"] == "rank"]
    assert rank and rank[0]["type"] == "ranker" and rank[0]["value"] == {"ranker": {"rank": expected}}

    # the same annotation through the SDK export and the validator
    [exported] = b.pull(res["batch"], dataset)
    assert len(exported["annotations"]) == 1
    expected_ids = {task["data"]["prompt_id"]: set(shown)}
    valid, problems, submitted = parse_tasks([exported], expected_ids)
    assert submitted == 1 and not problems, problems
    assert valid[0].ranking == [[i] for i in expected]

    # and cumed's pull publishes it as a rankings row
    out = pull(st, res["batch"], b, publish="rk")
    assert out["rankings"] == 1 and not out["problems"] and not out["counts"]["mismatch"], out
    [row] = st.get("rk").to_arrow().to_pylist()
    assert row["ranking"] == [[i] for i in expected] and row["method"] == "annotation"
    print(f"browser ranking: {expected} {timings} screenshot {info}")


RATING_ROWS = """() => {
    // every rating label (a <Text> holding a dimension's name) and every star row, in document order:
    // the config emits them pairwise (label, then its stars), answer by answer
    const names = new Set(%s);
    const box = e => { const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height}; };
    const labels = [...document.querySelectorAll('.lsf-richtext__line')].filter(e => names.has(e.textContent.trim()));
    const stars = [...document.querySelectorAll('ul.ant-rate')];
    return {labels: labels.map(e => ({text: e.textContent.trim(), box: box(e)})), stars: stars.map(box)};
}"""


def test_rating_labels_sit_beside_their_stars(ls_server, backend_factory, dataset, tmp_path):
    """Each per-dimension label and its star row share a row (bounding boxes overlap vertically, the
    stars to the right of the label); a click on the stars beside "answer A, relevance" stores
    ``rating_relevance_0``."""
    import json

    env = read_env_file(ls_server.env_file)
    url = env["LABEL_STUDIO_URL"].rstrip("/")
    st = Store(tmp_path / "s")
    st.publish(dataset, one_prompt_table(), kind="rankings")
    b = backend_factory(task_type="ranking")
    res = push(st, f"{dataset}@1", 1, lambda d: b, k=4, seed=11)
    [task] = b.pull(res["batch"], dataset)
    viewport = {"width": 1400, "height": 1000}
    with browser() as br:
        page = br.new_page(viewport=viewport, locale="zh-CN")
        page.set_default_timeout(60_000)
        login(page, url, env["LABEL_STUDIO_USERNAME"], env["LABEL_STUDIO_PASSWORD"])
        page.goto(f"{url}/projects/{res['project']}/data?task={task['id']}")
        page.wait_for_function("document.querySelectorAll('ul.ant-rate').length === 12")
        page.get_by_text("Per-dimension ratings").evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(500)
        shot = tmp_path / "ratings.png"
        page.screenshot(path=str(shot))
        rows = page.evaluate(RATING_ROWS % json.dumps(list(DIMENSIONS.values()), ensure_ascii=False))
        assert len(rows["labels"]) == len(rows["stars"]) == 4 * len(DIMENSIONS), rows
        for label, stars in zip(rows["labels"], rows["stars"]):
            lb = label["box"]
            assert y_overlap(lb, stars) >= min(lb["height"], stars["height"]) / 2, (label, stars)
            assert stars["x"] >= lb["x"] + lb["width"] - 1, (label, stars)  # beside it, to the right
        assert [r["text"] for r in rows["labels"][:3]] == list(DIMENSIONS.values())

        # the stars beside "answer A · relevance" rate exactly that: 4 stars -> rating_relevance_0 = 4
        page.locator("ul.ant-rate").first.locator("li.ant-rate-star").nth(3).click()
        with page.expect_response(lambda r: r.request.method == "POST"
                                  and f"/api/tasks/{task['id']}/annotations" in r.url) as posted:
            page.get_by_role("button", name="Submit").click()
        assert posted.value.ok, posted.value.status
        ratings = {r["from_name"]: r["value"]["rating"] for r in posted.value.json()["result"] if r["type"] == "rating"}
        assert ratings == {"rating_relevance_0": 4}, ratings
    assert_not_blank(shot)
