"""Reward functions in TRL's signature: grade match and format."""

from __future__ import annotations

from relmodel.format import format_completion
from relmodel.trainers.grpo import ZeroVarianceGroups
from relmodel.trainers.rewards import format_reward, grade_reward

GOOD = format_completion(3, ["q", "i", "c", "a", "Related, grade 3."])


def test_grade_reward_is_exact_leading_grade_match() -> None:
    completions = [GOOD, GOOD, "4\n<reason>", "no grade", "34 things"]
    assert grade_reward(completions, gold=[3, 4, 4, 3, 3]) == [1.0, 0.0, 1.0, 0.0, 0.0]


def test_grade_reward_reads_conversational_completions() -> None:
    assert grade_reward([[{"role": "assistant", "content": GOOD}]], gold=[3]) == [1.0]


def test_format_reward_levels() -> None:
    assert format_reward([GOOD, "3\n<reason>\n1. Query: truncated", "garbage"]) == [1.0, 0.0, -1.0]


def test_rewards_ignore_extra_columns() -> None:
    assert grade_reward([GOOD], gold=[3], prompts=["p"], completion_ids=[[1]]) == [1.0]
    assert format_reward([GOOD], gold=[3], prompts=["p"]) == [1.0]


def test_zero_variance_groups_counts_one_prompts_rollouts_that_all_score_alike() -> None:
    probe = ZeroVarianceGroups(grade_reward, group_size=2)
    assert probe.share is None  # nothing trained yet
    completions = [GOOD, GOOD, "1\n<reason>", GOOD]  # group 1: both right; group 2: mixed
    gold = [3, 3, 3, 3]
    assert probe(completions, gold=gold) == grade_reward(completions, gold=gold) == [1.0, 1.0, 0.0, 1.0]
    assert probe.__name__ == "grade_reward" and (probe.groups, probe.zero_variance) == (2, 1)
    probe(completions[2:], gold=gold[2:])
    assert probe.share == round(1 / 3, 4)
