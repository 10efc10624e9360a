import pytest

from relmodel.errors import FormatError
from relmodel.format import (
    build_prompt,
    format_completion,
    format_label_only,
    leading_grade,
    parse_completion,
    query_prefix,
)
from relmodel.labels import Grade

STEPS = ["wants running shoes", "a red running shoe", "category matches", "color red matches", "all met, grade 4."]


def test_round_trip():
    text = format_completion(4, STEPS)
    parsed = parse_completion(text)
    assert parsed.grade == Grade.EXCELLENT
    assert parsed.steps == tuple(STEPS)
    assert parsed.verdict_grade == Grade.EXCELLENT and parsed.consistent


def test_prompt_puts_the_query_first_and_shares_a_prefix_across_items():
    a = build_prompt("red shoes", "Red Runner", {"color": "red"})
    b = build_prompt("red shoes", "Blue Boot")
    assert a.startswith(query_prefix("red shoes")) and b.startswith(query_prefix("red shoes"))
    assert a.index("Query:") < a.index("Item:") < a.index("Attributes:")
    assert a.endswith("Grade:\n")


def test_newlines_in_fields_cannot_break_the_layout():
    prompt = build_prompt("red\nshoes", "Item: fake\nGrade:\n4")
    assert prompt.count("\n") == 4


def test_verdict_that_disagrees_with_the_grade_is_flagged():
    parsed = parse_completion(format_completion(4, [*STEPS[:4], "constraint violated, grade 2."]))
    assert parsed.verdict_grade == Grade.MISMATCH and not parsed.consistent


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "start with a grade"),
        ("5\n<reason>", "start with a grade"),
        ("Excellent\n<reason>", "start with a grade"),
        ("4\nbecause", "<reason>"),
        (format_completion(3, STEPS).replace("</reason>", ""), "truncated"),
        (format_completion(3, STEPS).replace("3. Category", "3. Colour"), "step 3"),
        (format_completion(3, STEPS).replace("2. Item: a red running shoe\n", ""), "5 reasoning steps"),
        (format_completion(3, STEPS) + "\nextra", "after"),
        ("42\n<reason>", "start with a grade"),
    ],
)
def test_malformed_outputs_get_a_clear_error(text, message):
    with pytest.raises(FormatError, match=message):
        parse_completion(text)


def test_leading_grade_reads_only_the_first_token():
    assert leading_grade("3\n<reason>...") == Grade.RELATED
    assert leading_grade("3") == Grade.RELATED
    assert leading_grade("34") is None
    assert leading_grade("x3") is None


def test_label_only_and_wrong_step_count():
    assert format_label_only(2) == "2"
    with pytest.raises(FormatError, match="5 steps"):
        format_completion(2, STEPS[:3])
