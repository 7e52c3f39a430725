"""The review interface: Label Studio labeling config and the values it produces.

Chinese labels with English hints; the ``value`` of every choice is a stable English code, so
results parse the same whatever the display language.
"""

from __future__ import annotations

DECISIONS = {"keep": "保留 keep", "discard": "删除 discard"}
REASONS = {
    "low_quality": "质量差 low quality",
    "not_medical": "非医学 not medical",
    "off_topic": "非目标科室 off-topic for the target department",
    "privacy": "隐私信息 privacy",
    "duplicate": "重复 duplicate",
    "unsafe_advice": "不安全建议 unsafe advice",
    "other": "其他 other",
}

LABEL_CONFIG = """<View>
  <Header value="文档审核 Document review"/>
  <Text name="meta" value="$meta"/>
  <Text name="text" value="$text"/>
  <Header value="决定 Decision"/>
  <Choices name="decision" toName="text" choice="single-radio" required="true">
{decisions}
  </Choices>
  <Header value="原因（删除时必填） Reason (required to discard)"/>
  <Choices name="reason" toName="text" choice="single">
{reasons}
  </Choices>
  <TextArea name="comment" toName="text" placeholder="备注（可选） Comment (optional)" maxSubmissions="1"/>
</View>
""".format(
    # value is what the annotator sees; alias is what the result stores.
    decisions="\n".join(f'    <Choice value="{v}" alias="{k}"/>' for k, v in DECISIONS.items()),
    reasons="\n".join(f'    <Choice value="{v}" alias="{k}"/>' for k, v in REASONS.items()),
)

# Results may carry the alias (the code) or, from older configs, the displayed value.
DECISION_CODES = {**{k: k for k in DECISIONS}, **{v: k for k, v in DECISIONS.items()}}
REASON_CODES = {**{k: k for k in REASONS}, **{v: k for k, v in REASONS.items()}}


def meta_line(source: str, category: str, score: float | None) -> str:
    """The line shown above the text: source, category and classifier score."""
    shown = "—" if score is None else f"{score:.2f}"
    return f"来源 source: {source} · 类别 category: {category} · 分类器分数 classifier score: {shown}"


def result_items(decision: str, reason: str | None = None, comment: str | None = None) -> list[dict]:
    """An annotation ``result`` list in this config's format (used by tests and importers)."""
    items = [{"from_name": "decision", "to_name": "text", "type": "choices", "value": {"choices": [decision]}}]
    if reason:
        items.append({"from_name": "reason", "to_name": "text", "type": "choices", "value": {"choices": [reason]}})
    if comment:
        items.append({"from_name": "comment", "to_name": "text", "type": "textarea", "value": {"text": [comment]}})
    return items
