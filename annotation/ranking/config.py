"""The ranking interface: Label Studio labeling config with the paper's Table-2 rubric.

``<List name="responses" value="$responses"/>`` + ``<Ranker name="rank" toName="responses"/>``:
Label Studio stores a drag+submit as ``{"from_name": "rank", "to_name": "responses", "type": "ranker",
"value": {"ranker": {"rank": ["r3", "r1", "r2"]}}}`` (best first). With ``ties=True`` the Ranker gets
one ``<Bucket>`` per rank level (``rank_1`` .. ``rank_K``, the first one the default bucket holding
every item), and the value is ``{"ranker": {"rank_1": [...], "rank_2": [...], ...}}``: every non-empty
bucket is one tie group, in bucket order. Per-dimension ratings are ``<Rating>`` tags
(``rating_<dimension>_<response position>``) when ``ratings=True``.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

# Table 2 of the paper, importance from high to low: (dimension, ability, what the answer must do).
RUBRIC = [
    ("相关性 Relevance", [
        ("全面性 Comprehensiveness", "包含所有相关医学信息，不遗漏重要细节 include all relevant medical information, omit no important detail"),
        ("相关性 Relevance", "紧扣问题核心，每部分都回应提问 stay on the core of the question; every part addresses the inquiry"),
        ("逻辑结构 Logical structuring", "逻辑清晰、条理分明、易于理解 clear logical structure, well organised, easy to follow"),
    ]),
    ("专业性 Expertise", [
        ("安全性 Safety", "患者安全第一，无误导或有害建议 put patient safety first; no misleading or harmful advice"),
        ("专业性 Professionalism", "符合医学专业标准 meet the medical profession's standards"),
        ("伦理合规 Ethical compliance", "遵守医学伦理 follow medical ethics"),
    ]),
    ("体验 Experience", [
        ("清晰度 Clarity", "简洁明了，避免患者难懂的术语 concise and clear, avoid jargon the patient cannot follow"),
        ("响应效率 Response efficiency", "及时，紧急情况尤其如此 timely, especially when the situation is urgent"),
        ("语气与共情 Tone and emotional resonance", "友好、温暖、有同理心 friendly, warm, empathetic; not cold or curt"),
    ]),
]
DIMENSIONS = {"relevance": RUBRIC[0][0], "expertise": RUBRIC[1][0], "experience": RUBRIC[2][0]}


def rubric_html() -> str:
    rows = []
    for dim, abilities in RUBRIC:
        for k, (ability, text) in enumerate(abilities):
            first = f'<td rowspan="{len(abilities)}"><b>{dim}</b></td>' if k == 0 else ""
            rows.append(f"<tr>{first}<td>{ability}</td><td>{text}</td></tr>")
    return ('<div style="font-size:13px"><b>评分标准（重要性由高到低） Rubric (importance high to low)</b>'
            '<table border="1" cellpadding="3" style="border-collapse:collapse">'
            "<tr><th>维度 Dimension</th><th>能力 Ability</th><th>要求 Requirement</th></tr>"
            + "".join(rows) + "</table></div>")


def bucket_names(k: int) -> list[str]:
    return [f"rank_{i + 1}" for i in range(k)]


def label_config(k: int = 4, ties: bool = False, ratings: bool = True) -> str:
    """The labeling config for tasks of ``k`` responses."""
    if ties:
        default = ' default="true"'
        buckets = "\n".join(
            f'      <Bucket name="{b}" title="第{i + 1}名 Rank {i + 1}"{default if i == 0 else ""}/>'
            for i, b in enumerate(bucket_names(k)))
        ranker = f'    <Ranker name="rank" toName="responses">\n{buckets}\n    </Ranker>'
        how = "把回答拖入名次栏，同一栏内视为并列 Drag each answer into a rank column; answers in one column tie"
    else:
        ranker = '    <Ranker name="rank" toName="responses"/>'
        how = "拖动排序，最好的在最上面 Drag to order, best on top"
    rating_tags = ""
    if ratings:
        # One block per answer (as many side by side as fit, each at least 320px wide); inside it
        # one non-wrapping flex row per dimension: the label in a fixed-width cell and its stars
        # beside it, so a label never drifts away from its stars (a flat grid of labels and
        # ratings did exactly that).
        parts = []
        for i in range(k):
            parts.append('      <View style="min-width:0">')
            parts.append(f'       <Header value="回答 {chr(65 + i)} Answer {chr(65 + i)}" size="6"/>')
            for code, dim in DIMENSIONS.items():
                parts.append('       <View style="display:flex;flex-wrap:nowrap;align-items:center;gap:8px">')
                parts.append(f'        <View style="flex:0 0 140px"><Text name="lbl_{code}_{i}" value="{escape(dim)}"/></View>')
                parts.append(f'        <View style="flex:0 0 auto;white-space:nowrap">'
                             f'<Rating name="rating_{code}_{i}" toName="prompt" maxRating="5"/></View>')
                parts.append('       </View>')
            parts.append('      </View>')
        rating_tags = ('\n    <Header value="分维度评分（可选） Per-dimension ratings (optional)"/>\n'
                       '    <View style="display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:4px 24px">\n'
                       + "\n".join(parts) + "\n    </View>")
    return f"""<View>
  <Header value="回答排序 Rank the answers"/>
  <View style="display:flex;gap:16px">
   <View style="flex:3">
    <Text name="prompt" value="$prompt"/>
    <Header value="{escape(how)}" size="6"/>
    <List name="responses" value="$responses" title="回答 Answers"/>
{ranker}{rating_tags}
    <TextArea name="comment" toName="prompt" placeholder="备注（可选） Comment (optional)" maxSubmissions="1"/>
   </View>
   <View style="flex:2">
    <HyperText name="rubric" value="$rubric"/>
   </View>
  </View>
</View>
"""


def result_items(ranking: list, ties: bool = False, ratings: dict | None = None, k: int | None = None) -> list[dict]:
    """An annotation ``result`` list in this config's format (tests and importers).

    ``ranking``: ids best first, or tie groups (lists). ``ratings``: {(dimension code, position): 1..5}.
    """
    groups = [g if isinstance(g, list) else [g] for g in ranking]
    if ties:
        names = bucket_names(k or sum(len(g) for g in groups))
        value = {"ranker": {names[i]: list(g) for i, g in enumerate(groups)}}
    else:
        value = {"ranker": {"rank": [r for g in groups for r in g]}}
    items = [{"from_name": "rank", "to_name": "responses", "type": "ranker", "value": value}]
    for (code, pos), stars in (ratings or {}).items():
        items.append({"from_name": f"rating_{code}_{pos}", "to_name": "prompt", "type": "rating",
                      "value": {"rating": stars}})
    return items
