"""Teachers: the offline rule teacher writes valid post-CoT; the OpenAI teacher speaks real HTTP."""

from __future__ import annotations

import pytest

from relmodel.data.rules import builtin_rules
from relmodel.data.schemas import GradedPair
from relmodel.format import parse_completion
from relmodel.labels import Grade
from relmodel.rag.teachers import OpenAITeacher, RuleTeacher, TeacherError, make_teacher
from relmodel.spec import TeacherSpec
from tests.rag.fake_teacher import FakeTeacher

RULES = {r.rule_id: r for r in builtin_rules()}
PAIR = GradedPair(query="running shoes not nike", item_id="i1", query_type="negation", grade=2,
                  title="Nike Running Shoes - Red", attributes={"category": "running shoes", "brand": "Nike"})


@pytest.mark.parametrize("grade", list(Grade))
def test_rule_teacher_writes_the_gold_grade_and_cites_a_rule(grade):
    pair = PAIR.model_copy(update={"grade": grade})
    rules = [RULES["R-NEG-05"], RULES["R-NEG-01"], RULES["R-GEN-02"]]
    text = RuleTeacher().rationale(pair, rules)
    parsed = parse_completion(text)
    assert parsed.grade == grade and parsed.verdict_grade == grade
    assert "[R-NEG-05]" in text  # the background rule
    if grade == Grade.MISMATCH:
        assert "[R-NEG-01]" in parsed.steps[-1]
    assert RuleTeacher().rationale(pair, rules) == text  # deterministic
    assert "offline" in RuleTeacher.name and "rule" in RuleTeacher.name


def test_rule_teacher_without_rules_still_parses():
    assert parse_completion(RuleTeacher().rationale(PAIR, [])).grade == Grade.MISMATCH


def test_openai_teacher_answers_and_strips_think_and_sends_the_key(monkeypatch):
    monkeypatch.setenv("TEACHER_KEY", "sk-test")
    with FakeTeacher(behaviour=lambda prompt: "think") as fake:
        teacher = make_teacher(TeacherSpec(kind="openai", endpoint=fake.url, model="r1", api_key_env="TEACHER_KEY"))
        assert isinstance(teacher, OpenAITeacher) and teacher.name == "openai:r1"
        text = teacher.rationale(PAIR, [RULES["R-NEG-01"]])
    assert text.startswith("2\n<reason>") and "[R-NEG-01]" in text
    assert fake.headers[0]["Authorization"] == "Bearer sk-test"


def test_openai_teacher_retries_after_429():
    with FakeTeacher(behaviour=lambda prompt: "good", rate_limit_first=True) as fake:
        teacher = OpenAITeacher(fake.url, "r1", backoff=0.01)
        assert parse_completion(teacher.rationale(PAIR, [RULES["R-NEG-01"]])).grade == Grade.MISMATCH
    assert fake.statuses == {429: 1, 200: 1}


def test_openai_teacher_gives_up_after_max_retries_on_5xx():
    with FakeTeacher(behaviour=lambda prompt: "error500") as fake:
        teacher = OpenAITeacher(fake.url, "r1", max_retries=2, backoff=0.01)
        with pytest.raises(TeacherError, match="500"):
            teacher.rationale(PAIR, [])
    assert fake.statuses == {500: 3}


def test_openai_teacher_does_not_retry_a_client_error_and_needs_its_key(monkeypatch):
    with FakeTeacher() as fake:
        teacher = OpenAITeacher(fake.url.replace("/v1", "/nope"), "r1", backoff=0.01)
        with pytest.raises(TeacherError, match="404"):
            teacher.rationale(PAIR, [])
    assert fake.statuses == {404: 1}
    monkeypatch.delenv("MISSING_KEY", raising=False)
    with pytest.raises(TeacherError, match="MISSING_KEY"):
        make_teacher(TeacherSpec(kind="openai", endpoint="http://x/v1", model="m", api_key_env="MISSING_KEY"))
