"""RAG CoT generation: retrieve rules, ask the teacher, keep only rationales that pass the filter.

The filter (methods.md §1.4 PROPOSAL) rejects a completion that
  - cannot be parsed as post-CoT (`unparsable`),
  - starts with a grade other than the gold one (`wrong_grade`),
  - has a verdict step naming another grade, or none (`wrong_verdict`),
  - is longer than the character budget (`too_long`),
  - cites none of the retrieved rules although rules were retrieved (`no_rule_cited`);
and a teacher call that failed is rejected as `teacher_error`. Rejected rows keep the reason.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from relmodel.data.schemas import CoTRecord, GradedPair, RejectedCoT, Rule
from relmodel.errors import FormatError, RelmodelError
from relmodel.format import parse_completion
from relmodel.labels import Grade
from relmodel.rag.retrieval import Retriever
from relmodel.rag.teachers import Teacher

log = logging.getLogger("relmodel.rag")
REASONS = ("teacher_error", "unparsable", "wrong_grade", "wrong_verdict", "too_long", "no_rule_cited")


def reason_code(reason: str) -> str:
    """The histogram key of a rejection reason ("unparsable: missing </reason>" -> "unparsable")."""
    return reason.split(":", 1)[0]


def cited_rules(completion: str, rule_ids: Sequence[str]) -> list[str]:
    """The ids among `rule_ids` that the completion mentions as whole tokens."""
    return [rid for rid in rule_ids if re.search(rf"(?<![\w-]){re.escape(rid)}(?![\w-])", completion)]


def check_completion(completion: str, gold: Grade, rule_ids: Sequence[str], max_chars: int) -> str | None:
    """The reason to reject `completion`, or None when it passes the filter."""
    try:
        parsed = parse_completion(completion)
    except FormatError as exc:
        return f"unparsable: {exc}"
    if parsed.grade != gold:
        return f"wrong_grade: starts with {int(parsed.grade)}, gold is {int(gold)}"
    if parsed.verdict_grade != gold:
        named = "no grade" if parsed.verdict_grade is None else f"grade {int(parsed.verdict_grade)}"
        return f"wrong_verdict: the verdict names {named}, gold is {int(gold)}"
    if len(completion) > max_chars:
        return f"too_long: {len(completion)} chars > {max_chars}"
    if rule_ids and not cited_rules(completion, rule_ids):
        return "no_rule_cited"
    return None


@dataclass
class CoTBatch:
    accepted: list[CoTRecord]
    rejected: list[RejectedCoT]


def _ask(teacher: Teacher, pair: GradedPair, rules: Sequence[Rule]) -> tuple[str, str | None]:
    """(completion, error): one failed call must not sink the whole batch."""
    try:
        return teacher.rationale(pair, rules), None
    except RelmodelError as exc:
        return "", f"teacher_error: {exc}"


def generate_cot(pairs: Sequence[GradedPair], retriever: Retriever, teacher: Teacher, *, top_k: int,
                 max_chars: int) -> CoTBatch:
    """Retrieve `top_k` rules per pair, ask the teacher (up to its max_concurrency at once), filter."""
    retrieved = retriever.retrieve(pairs, top_k)
    with ThreadPoolExecutor(max_workers=max(1, teacher.max_concurrency)) as pool:
        answers = list(pool.map(lambda job: _ask(teacher, *job), zip(pairs, retrieved, strict=True)))
    batch = CoTBatch([], [])
    for pair, rules, (completion, error) in zip(pairs, retrieved, answers, strict=True):
        rule_ids = [r.rule_id for r in rules]
        reason = error or check_completion(completion, pair.grade, rule_ids, max_chars)
        if reason is None:
            batch.accepted.append(CoTRecord(pair=pair, completion=completion,
                                            rule_ids=cited_rules(completion, rule_ids), teacher=teacher.name))
        else:
            batch.rejected.append(RejectedCoT(pair=pair, completion=completion, reason=reason, teacher=teacher.name))
    log.info("cot: %d accepted, %d rejected by the filter", len(batch.accepted), len(batch.rejected))
    return batch
