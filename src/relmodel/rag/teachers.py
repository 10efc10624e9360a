"""Teachers write the post-CoT rationale of a pair, given its gold grade and the retrieved rules.

Label-conditioned, as in DyKnow-RAG (the team's convention): the teacher explains the known grade
instead of guessing it; `relmodel.rag.cot` then filters what it wrote.

- `RuleTeacher`: offline and deterministic; composes the five steps from the pair's fields and the
  retrieved rules. It is what the demo uses, and its name says so.
- `OpenAITeacher`: any OpenAI-compatible /v1/chat/completions endpoint (vLLM, DeepSeek, OpenAI...),
  with a timeout and retries with backoff on 429 and 5xx.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any, Protocol

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from relmodel.data.schemas import GradedPair, Rule
from relmodel.errors import RelmodelError
from relmodel.format import STEP_NAMES, format_completion
from relmodel.labels import Grade
from relmodel.spec import TeacherSpec


class TeacherError(RelmodelError):
    """The teacher gave no usable answer (HTTP error after retries, malformed response)."""


class Teacher(Protocol):
    """Writes a post-CoT completion for a pair whose gold grade it is told."""

    name: str
    max_concurrency: int

    def rationale(self, pair: GradedPair, rules: Sequence[Rule]) -> str: ...


def cite(rule: Rule) -> str:
    """How a rationale cites a rule; the CoT filter looks for exactly this."""
    return f"[{rule.rule_id}]"


# --- offline rule-based teacher ---------------------------------------------------------------------

_QUERY_KINDS = {
    "head": "a direct product search",
    "negation": "a search that excludes something",
    "alternative": "a search for a cheaper alternative to a premium product",
    "qa": "a question about which product meets a need",
    "knowledge": "a search that needs product or world knowledge",
    "other": "a product search",
}
_ATTRIBUTE_JUDGEMENT = {
    Grade.EXCELLENT: "every explicit constraint of the query holds",
    Grade.RELATED: "the core need is met, but the item is a near substitute or a non-critical attribute "
                   "is off or unstated",
    Grade.MISMATCH: "at least one explicit constraint of the query is violated",
    Grade.IRRELEVANT: "attributes cannot rescue a different product",
}


def _mentions_a_tag(pair: GradedPair, rule: Rule) -> bool:
    """Whether the query speaks of the rule's subject (a retrieved rule can be off-topic)."""
    text = f"{pair.query} {pair.query_type}".lower()
    return any(tag.lower() in text for tag in rule.tags)


class RuleTeacher:
    """The offline rule-based teacher: no LLM, deterministic, cites the retrieved rules it uses."""

    name = "offline-rule-teacher"
    max_concurrency = 1

    def rationale(self, pair: GradedPair, rules: Sequence[Rule]) -> str:
        grade = pair.grade
        # the rule that states this grade; else a background rule; else whatever was retrieved first
        decisive = next((r for r in rules if r.grade_hint == grade), None)
        background = next((r for r in rules if r.grade_hint is None and _mentions_a_tag(pair, r)), None)
        fallback = rules[0] if rules and decisive is None and background is None else None
        attrs = pair.attributes
        category = attrs.get("category", "product")
        mentioned = [f"{k} {v}" for k, v in attrs.items() if k != "category" and v.lower() in pair.query.lower()]
        query_step = f'"{pair.query}" is {_QUERY_KINDS[pair.query_type]}'
        if background is not None:
            query_step += f"; {background.text.rstrip('.')} {cite(background)}"
        item_step = pair.title
        if attrs:
            item_step += " (" + ", ".join(f"{k}: {v}" for k, v in list(attrs.items())[:6]) + ")"
        if grade == Grade.IRRELEVANT:
            category_step = f"a {category} is a different product from the one the query asks for"
        elif grade == Grade.RELATED:
            category_step = f"a {category} is the product asked for or a near substitute for it"
        else:
            category_step = f"a {category} is the product the query asks for"
        attribute_step = _ATTRIBUTE_JUDGEMENT[grade]
        if mentioned:
            attribute_step += "; the query mentions " + ", ".join(mentioned)
        verdict = f"the item is {grade.label}"
        if decisive is not None:
            verdict = f"by {cite(decisive)}, {decisive.text[0].lower()}{decisive.text[1:].rstrip('.')}; {verdict}"
        elif fallback is not None:
            verdict = f"having weighed {cite(fallback)}, {verdict}"
        steps = [query_step, item_step, category_step, attribute_step, f"{verdict}, grade {int(grade)}."]
        return format_completion(grade, steps)


# --- OpenAI-compatible teacher ------------------------------------------------------------------------

SYSTEM_PROMPT = (
    "You annotate e-commerce search relevance. Grades: 4 Excellent (right product, every explicit "
    "constraint met), 3 Related (near substitute, or a non-critical attribute off or unstated), "
    "2 Mismatch (right category, an explicit constraint violated), 1 Irrelevant (different product). "
    "You are told the correct grade; explain it using the numbered rules, citing each rule you use by "
    "its id in square brackets, e.g. [R-GEN-01]. Answer in exactly this format and nothing else:\n"
    "<grade digit>\n<reason>\n"
    + "\n".join(f"{i}. {name}: ..." for i, name in enumerate(STEP_NAMES, 1))
    + " ... grade <grade digit>.\n</reason>\n"
    "Each step is one line. The first line is only the grade digit."
)
_THINK_RE = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)


def teacher_prompt(pair: GradedPair, rules: Sequence[Rule]) -> str:
    """The user message: pair, gold grade and the retrieved rules with their ids."""
    attrs = "; ".join(f"{k}: {v}" for k, v in pair.attributes.items()) or "(none)"
    rule_lines = "\n".join(f"{cite(r)} {r.text}" for r in rules) or "(no rules retrieved)"
    return (f"Query: {pair.query}\nItem: {pair.title}\nAttributes: {attrs}\n"
            f"Correct grade: {int(pair.grade)} ({pair.grade.label})\nRules:\n{rule_lines}")


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)  # connection errors and timeouts


class OpenAITeacher:
    """A teacher behind any OpenAI-compatible chat-completions endpoint (thread-safe)."""

    def __init__(self, endpoint: str, model: str, *, api_key: str | None = None, max_concurrency: int = 8,
                 timeout: float = 60.0, max_retries: int = 4, backoff: float = 1.0, temperature: float = 0.3,
                 max_tokens: int = 1024) -> None:
        self.name = f"openai:{model}"
        self.model = model
        self.max_concurrency = max_concurrency
        self.temperature, self.max_tokens = temperature, max_tokens
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=endpoint.rstrip("/") + "/", timeout=timeout, headers=headers,
                                    limits=httpx.Limits(max_connections=max_concurrency))
        self._retrying = Retrying(stop=stop_after_attempt(max_retries + 1), retry=retry_if_exception(_retryable),
                                  wait=self._wait(backoff), reraise=True)

    @classmethod
    def from_spec(cls, spec: TeacherSpec) -> OpenAITeacher:
        if not (spec.endpoint and spec.model):
            raise TeacherError("an openai teacher needs endpoint and model")
        api_key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
        if spec.api_key_env and not api_key:
            raise TeacherError(f"environment variable {spec.api_key_env} (teacher API key) is not set")
        return cls(spec.endpoint, spec.model, api_key=api_key, max_concurrency=spec.max_concurrency,
                   timeout=spec.timeout_seconds, max_retries=spec.max_retries)

    @staticmethod
    def _wait(backoff: float) -> Any:
        """Exponential backoff with jitter, but honour a server's Retry-After (capped at 60 s)."""
        exponential = wait_exponential_jitter(multiplier=backoff, max=60.0, jitter=backoff)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, httpx.HTTPStatusError):
                retry_after = exc.response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    return min(float(retry_after), 60.0)
            return float(exponential(state))

        return wait

    def rationale(self, pair: GradedPair, rules: Sequence[Rule]) -> str:
        body = {"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens,
                "messages": [{"role": "system", "content": SYSTEM_PROMPT},
                             {"role": "user", "content": teacher_prompt(pair, rules)}]}
        try:
            data = self._retrying(self._post, body)
        except httpx.HTTPError as exc:
            raise TeacherError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise TeacherError(f"{self.name}: malformed response {str(data)[:200]!r}") from exc
        if not isinstance(content, str):
            raise TeacherError(f"{self.name}: response content is {type(content).__name__}, not text")
        return _THINK_RE.sub("", content).strip()  # reasoning models may prepend <think>...</think>

    def _post(self, body: dict[str, Any]) -> Any:
        response = self._client.post("chat/completions", json=body)
        response.raise_for_status()
        try:
            return response.json()
        except ValueError as exc:
            raise TeacherError(f"{self.name}: response is not JSON: {response.text[:200]!r}") from exc

    def close(self) -> None:
        self._client.close()


def make_teacher(spec: TeacherSpec) -> Teacher:
    """The teacher a CoTSpec asks for."""
    if spec.kind == "openai":
        return OpenAITeacher.from_spec(spec)
    if spec.kind == "esci-rules":
        from relmodel.rag.esci_teacher import EsciRuleTeacher

        return EsciRuleTeacher()
    return RuleTeacher()
