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

# Layout: the document scrolls inside a box of fixed height on the left; the decision, the reason
# and the comment sit in a panel on the right, so they (and the Submit button) are on screen
# without scrolling however long the document is. The reason is shown, and required, only when
# "discard" is chosen (``visibleWhen`` + ``required``): Label Studio refuses the submit with
# ``requiredMessage``, the same rule ``review pull`` validates (a hidden required tag is not checked,
# so "keep" needs no reason).
LABEL_CONFIG = """<View>
  <View style="display:flex;gap:16px;align-items:flex-start">
    <View style="flex:1 1 0;min-width:0">
      <Header value="文档审核 Document review" size="5"/>
      <Text name="meta" value="$meta"/>
      <View style="height:62vh;overflow-y:auto;border:1px solid #d9d9d9;border-radius:4px;padding:4px 12px">
        <Text name="text" value="$text"/>
      </View>
    </View>
    <View style="flex:0 0 360px;max-width:45%">
      <Header value="决定 Decision" size="5"/>
      <Choices name="decision" toName="text" choice="single-radio" required="true"
               requiredMessage="请选择保留或删除 Choose keep or discard">
{decisions}
      </Choices>
      <View visibleWhen="choice-selected" whenTagName="decision" whenChoiceValue="discard">
        <Header value="原因（删除时必填） Reason (required to discard)" size="5"/>
      </View>
      <Choices name="reason" toName="text" choice="single-radio" required="true"
               requiredMessage="删除必须选择原因 A discard needs a reason"
               visibleWhen="choice-selected" whenTagName="decision" whenChoiceValue="discard">
{reasons}
      </Choices>
      <TextArea name="comment" toName="text" placeholder="备注（可选） Comment (optional)" maxSubmissions="1" rows="3"/>
    </View>
  </View>
</View>
""".format(
    # value is what the annotator sees; alias is what the result stores.
    decisions="\n".join(f'        <Choice value="{v}" alias="{k}"/>' for k, v in DECISIONS.items()),
    reasons="\n".join(f'        <Choice value="{v}" alias="{k}"/>' for k, v in REASONS.items()),
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
