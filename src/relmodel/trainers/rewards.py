"""GRPO reward functions, as plain callables in TRL's signature `(completions, **kwargs) -> list[float]`.

TRL passes every dataset column as a keyword argument, so the gold grade arrives as `gold`.
The GRPO stage weights them with `GRPOConfig.reward_weights = [1.0, format_reward_weight]`.
"""

from __future__ import annotations

from typing import Any

from relmodel.errors import FormatError
from relmodel.format import leading_grade, parse_completion

GOLD_COLUMN = "gold"


def _text(completion: Any) -> str:
    """A completion as text: TRL gives strings, or message lists for conversational prompts."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


def grade_reward(completions: list[Any], gold: list[int], **kwargs: Any) -> list[float]:
    """1.0 when the completion's leading grade equals gold, else 0.0 (the paper's is_equivalent)."""
    rewards = []
    for completion, grade in zip(completions, gold, strict=True):
        found = leading_grade(_text(completion))
        rewards.append(1.0 if found is not None and int(found) == int(grade) else 0.0)
    return rewards


def format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 for a complete post-CoT completion, 0.0 for a grade with a broken rationale, -1.0 for no grade."""
    rewards = []
    for completion in completions:
        text = _text(completion)
        if leading_grade(text) is None:
            rewards.append(-1.0)
            continue
        try:
            parse_completion(text)
        except FormatError:
            rewards.append(0.0)
        else:
            rewards.append(1.0)
    return rewards
