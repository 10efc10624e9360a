"""Prompt layout and the post-CoT output format, with a strict parser.

Post-CoT ("answer, then think"): the model writes the grade as its very first token, then a
five-step rationale. Serving reads only the first-token distribution, so the reasoning is never
decoded online. The query comes before the item so that all items of one query share a prefix
(vLLM prefix caching, one batched prefill per query).

    <prompt: instruction, Query:, Item:, Attributes:, "Grade:\\n">
    4
    <reason>
    1. Query: ...
    2. Item: ...
    3. Category: ...
    4. Attributes: ...
    5. Verdict: ... grade 4.
    </reason>
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from relmodel.errors import FormatError
from relmodel.labels import GRADE_TOKENS, Grade

INSTRUCTION = (
    "Rate how relevant the item is to the e-commerce search query: "
    "1 Irrelevant, 2 Mismatch, 3 Related, 4 Excellent. "
    "Write the grade first, then reason in five steps."
)
STEP_NAMES: tuple[str, ...] = ("Query", "Item", "Category", "Attributes", "Verdict")
REASON_OPEN, REASON_CLOSE = "<reason>", "</reason>"
PROMPT_SUFFIX = "Grade:\n"

_STEP_RE = re.compile(r"^(\d)\. (\w+): (.+)$")
_VERDICT_GRADE_RE = re.compile(r"\bgrade ([1-4])\b", re.IGNORECASE)


def query_prefix(query: str) -> str:
    """The part of the prompt every item of one query shares (the KV-cache prefix)."""
    return f"{INSTRUCTION}\nQuery: {_one_line(query)}\n"


def build_prompt(query: str, title: str, attributes: Mapping[str, str] | None = None) -> str:
    """The scoring/training prompt; its last token is followed by the grade token."""
    lines = [f"Item: {_one_line(title)}"]
    if attributes:
        attrs = "; ".join(f"{_one_line(k)}: {_one_line(str(v))}" for k, v in attributes.items())
        lines.append(f"Attributes: {attrs}")
    return query_prefix(query) + "\n".join(lines) + "\n" + PROMPT_SUFFIX


def format_completion(grade: Grade | int, steps: Sequence[str]) -> str:
    """Render a post-CoT completion: grade first, then the five numbered steps."""
    grade = Grade(int(grade))
    if len(steps) != len(STEP_NAMES):
        raise FormatError(f"a rationale has {len(STEP_NAMES)} steps, got {len(steps)}")
    body = "\n".join(
        f"{i}. {name}: {_one_line(text)}" for i, (name, text) in enumerate(zip(STEP_NAMES, steps, strict=True), 1)
    )
    return f"{grade.token}\n{REASON_OPEN}\n{body}\n{REASON_CLOSE}"


def format_label_only(grade: Grade | int) -> str:
    """The completion of the label-only SFT baseline (no rationale)."""
    return Grade(int(grade)).token


@dataclass(frozen=True)
class PostCoT:
    """A parsed post-CoT completion."""

    grade: Grade
    steps: tuple[str, ...]
    verdict_grade: Grade | None

    @property
    def consistent(self) -> bool:
        """False when the verdict step names another grade than the one emitted first."""
        return self.verdict_grade is None or self.verdict_grade == self.grade


def leading_grade(text: str) -> Grade | None:
    """The grade a completion starts with, or None if it starts with anything else."""
    stripped = text.lstrip(" ")
    if stripped[:1] in GRADE_TOKENS and (len(stripped) == 1 or not stripped[1].isdigit()):
        return Grade(int(stripped[0]))
    return None


def parse_completion(text: str) -> PostCoT:
    """Parse a full post-CoT completion, raising FormatError that says what is wrong."""
    grade = leading_grade(text)
    if grade is None:
        raise FormatError(f"the completion must start with a grade 1-4, got {text[:20]!r}")
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) < 2 or lines[1] != REASON_OPEN:
        raise FormatError(f"expected {REASON_OPEN!r} on the line after the grade")
    if REASON_CLOSE not in lines:
        raise FormatError(f"missing {REASON_CLOSE!r}: the rationale is truncated or unterminated")
    close = lines.index(REASON_CLOSE)
    if any(line for line in lines[close + 1 :]):
        raise FormatError(f"unexpected text after {REASON_CLOSE!r}")
    body = [line for line in lines[2:close] if line]
    if len(body) != len(STEP_NAMES):
        raise FormatError(f"expected {len(STEP_NAMES)} reasoning steps, found {len(body)}")
    steps: list[str] = []
    for number, (line, name) in enumerate(zip(body, STEP_NAMES, strict=True), 1):
        match = _STEP_RE.match(line)
        if not match or int(match.group(1)) != number or match.group(2) != name:
            raise FormatError(f"step {number} must read '{number}. {name}: ...', got {line[:40]!r}")
        steps.append(match.group(3).strip())
    verdict = _VERDICT_GRADE_RE.findall(steps[-1])
    verdict_grade = Grade(int(verdict[-1])) if verdict else None
    return PostCoT(grade=grade, steps=tuple(steps), verdict_grade=verdict_grade)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
