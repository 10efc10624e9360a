"""The CoT filter rejects each kind of bad rationale with its reason; good ones become CoTRecords."""

from __future__ import annotations

from collections import Counter

import pytest

from relmodel.data.rules import builtin_rules
from relmodel.data.synthetic import generate
from relmodel.format import format_completion
from relmodel.labels import Grade
from relmodel.rag.cot import check_completion, cited_rules, generate_cot, reason_code
from relmodel.rag.retrieval import BM25Retriever
from relmodel.rag.teachers import OpenAITeacher, RuleTeacher
from relmodel.spec import SyntheticDataSpec
from tests.rag.fake_teacher import FakeTeacher

STEPS = ["q", "item", "same category", "brand negated", "by [R-NEG-01] it is a mismatch, grade 2."]
GOOD = format_completion(2, STEPS)


def _reason(completion: str, gold: Grade = Grade.MISMATCH, max_chars: int = 1200) -> str | None:
    reason = check_completion(completion, gold, ["R-NEG-01", "R-NEG-05"], max_chars)
    return None if reason is None else reason_code(reason)


def test_a_good_rationale_passes():
    assert _reason(GOOD) is None


@pytest.mark.parametrize(("completion", "gold", "max_chars", "reason"), [
    ("Looks relevant to me.", Grade.MISMATCH, 1200, "unparsable"),
    (GOOD.replace("</reason>", ""), Grade.MISMATCH, 1200, "unparsable"),
    (GOOD, Grade.RELATED, 1200, "wrong_grade"),
    (format_completion(2, [*STEPS[:4], "by [R-NEG-01] it is related, grade 3."]), Grade.MISMATCH, 1200,
     "wrong_verdict"),
    (format_completion(2, [*STEPS[:4], "by [R-NEG-01] it is a mismatch."]), Grade.MISMATCH, 1200, "wrong_verdict"),
    (GOOD, Grade.MISMATCH, 100, "too_long"),
    (GOOD.replace("[R-NEG-01]", "the rules"), Grade.MISMATCH, 1200, "no_rule_cited"),
    (GOOD.replace("[R-NEG-01]", "[R-NEG-010]"), Grade.MISMATCH, 1200, "no_rule_cited"),
])
def test_each_bad_rationale_is_rejected_with_its_reason(completion, gold, max_chars, reason):
    assert _reason(completion, gold, max_chars) == reason


def test_citation_is_not_required_when_nothing_was_retrieved():
    assert check_completion(GOOD.replace("[R-NEG-01]", ""), Grade.MISMATCH, [], 1200) is None
    assert cited_rules(GOOD, ["R-NEG-01", "R-NEG-0", "R-GEN-01"]) == ["R-NEG-01"]


def test_rule_teacher_rationales_all_pass_on_the_synthetic_set():
    train, _, rules = generate(SyntheticDataSpec(train_size=120, eval_size=8))
    batch = generate_cot(train, BM25Retriever(rules), RuleTeacher(), top_k=3, max_chars=1200)
    assert (len(batch.accepted), len(batch.rejected)) == (120, 0)
    record = batch.accepted[0]
    assert record.teacher == "offline-rule-teacher" and record.rule_ids
    assert all(f"[{rid}]" in record.completion for rid in record.rule_ids)


def test_an_llm_teacher_gets_filtered_and_failures_are_kept_with_reasons():
    train, _, rules = generate(SyntheticDataSpec(train_size=80, eval_size=8))
    with FakeTeacher(rate_limit_first=True) as fake:
        teacher = OpenAITeacher(fake.url, "r1", max_concurrency=4, backoff=0.01)
        batch = generate_cot(train, BM25Retriever(rules), teacher, top_k=3, max_chars=1200)
    reasons = Counter(reason_code(r.reason) for r in batch.rejected)
    assert set(reasons) == {"unparsable", "wrong_grade", "no_rule_cited"}
    assert len(batch.accepted) + len(batch.rejected) == 80 and len(batch.accepted) >= 40
    # every distinct prompt was rate limited once, then retried
    assert fake.statuses[429] == len(fake.requests) and sum(fake.requests.values()) == 80 + fake.statuses[429]
    assert all(not r.completion.startswith("<think>") for r in batch.accepted)


def test_a_teacher_that_keeps_failing_is_a_rejection_not_a_crash():
    train, _, rules = generate(SyntheticDataSpec(train_size=8, eval_size=8))
    with FakeTeacher(behaviour=lambda prompt: "error500") as fake:
        teacher = OpenAITeacher(fake.url, "r1", max_retries=0)
        batch = generate_cot(train[:2], BM25Retriever(rules), teacher, top_k=2, max_chars=1200)
    assert [reason_code(r.reason) for r in batch.rejected] == ["teacher_error", "teacher_error"]
    assert builtin_rules()  # the KB itself is untouched
