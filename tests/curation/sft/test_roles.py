import pytest

from curation.sft.roles import normalize_role, split_inline, validate


@pytest.mark.parametrize("marker,role", [
    ("病人", "user"), ("患者", "user"), ("用户", "user"), ("human", "user"), ("user", "user"), ("<user>", "user"),
    ("医生", "assistant"), ("doctor", "assistant"), ("gpt", "assistant"), ("assistant", "assistant"),
    ("<bot>", "assistant"), ("system", "system"), ("Human", "user"), ("narrator", None),
])
def test_normalize_role(marker, role):
    assert normalize_role(marker) == role


def test_split_inline_only_at_line_start():
    turns = split_inline("病人：我问了医生：要不要手术\n医生：不用")
    assert turns == [("病人", "我问了医生：要不要手术"), ("医生", "不用")]
    assert split_inline(" <user>: a <bot>: b <user>: c") == [("<user>", "a"), ("<bot>", "b"), ("<user>", "c")]
    with pytest.raises(ValueError, match="before the first role marker"):
        split_inline("你好\n医生：x")


def u(c="q"):
    return {"role": "user", "content": c}


def a(c="a"):
    return {"role": "assistant", "content": c}


@pytest.mark.parametrize("messages,code", [
    ([u(), a()], None),
    ([{"role": "system", "content": "s"}, u(), a(), u(), a()], None),
    ([], "no_turns"),
    ([u(), u()], "not_alternating"),
    ([u("q1"), u("q2"), u("q3")], "not_alternating"),
    ([a(), u()], "starts_with_assistant"),
    ([u(), a(), u()], "ends_with_user"),
    ([u(), a(" ")], "empty_turn"),
    ([u(), {"role": "narrator", "content": "x", "raw_role": "narrator"}], "unknown_role"),
    ([u(), a(), {"role": "system", "content": "s"}], "misplaced_system"),
])
def test_validate(messages, code):
    reason = validate(messages)
    assert (reason.split(":")[0] if reason else None) == code
