"""The paper's DPO pair rule on all three cases, rejected = farthest wrong, and pass@k."""

from __future__ import annotations

import random

import pytest

from relmodel.data.schemas import GradedPair, SampleGroup
from relmodel.format import format_completion, leading_grade
from relmodel.trainers.sampling import build_preference_pairs, pass_at_k

PAIR = GradedPair(query="red shoe", item_id="i1", title="red shoe", grade=3)


def text(grade: int, note: str = "") -> str:
    return format_completion(grade, ["q", "i", "c", note or "a", f"grade {grade}."])


def group(*completions: str, pair: GradedPair = PAIR) -> SampleGroup:
    return SampleGroup(pair=pair, completions=list(completions), grades=[leading_grade(c) for c in completions])


TEACHER = {PAIR.pair_id: text(3, "teacher")}


def test_self_correction_chosen_correct_rejected_farthest_wrong() -> None:
    g = group(text(2), text(3, "a"), text(1), text(3, "b"), text(4))
    pairs, counts = build_preference_pairs([g], TEACHER, pairs_per_prompt=1, rng=random.Random(0))
    assert len(pairs) == 1 and pairs[0].case == "self_correction"
    assert leading_grade(pairs[0].chosen) == 3 and pairs[0].chosen in g.completions
    assert pairs[0].rejected == text(1)  # |1 - 3| = 2 is the farthest wrong grade
    assert counts == {"pairs_self_correction": 1, "prompts_self_correction": 1}
    assert pairs[0].prompt.endswith("Grade:\n")


def test_unparsable_sample_is_the_farthest_wrong() -> None:
    g = group(text(3), text(1), "garbage")
    pairs, _ = build_preference_pairs([g], TEACHER, pairs_per_prompt=1, rng=random.Random(0))
    assert pairs[0].rejected == "garbage"


def test_oracle_case_uses_the_teacher_as_chosen() -> None:
    g = group(text(1), text(2), text(2))
    pairs, counts = build_preference_pairs([g], TEACHER, pairs_per_prompt=2, rng=random.Random(0))
    assert [p.case for p in pairs] == ["oracle", "oracle"]
    assert all(p.chosen == TEACHER[PAIR.pair_id] for p in pairs)
    assert pairs[0].rejected == text(1) and pairs[1].rejected == text(2)  # distinct texts, farthest first
    assert counts["prompts_oracle"] == 1 and counts["pairs_oracle"] == 2


def test_oracle_without_a_usable_teacher_is_skipped() -> None:
    g = group(text(1), text(2))
    for teacher in ({}, {PAIR.pair_id: text(4)}):  # missing, or the teacher disagrees with gold
        pairs, counts = build_preference_pairs([g], teacher, pairs_per_prompt=1, rng=random.Random(0))
        assert pairs == [] and counts == {"oracle_unavailable": 1}


def test_all_correct_gives_no_pair() -> None:
    pairs, counts = build_preference_pairs([group(text(3, "a"), text(3, "b"))], TEACHER, 2, random.Random(0))
    assert pairs == [] and counts == {"all_correct": 1}


def test_pairs_per_prompt_caps_and_reuses_correct_samples() -> None:
    g = group(text(3), text(1), text(2, "x"), text(2, "y"), text(4))
    pairs, _ = build_preference_pairs([g], TEACHER, pairs_per_prompt=3, rng=random.Random(1))
    assert len(pairs) == 3 and len({p.rejected for p in pairs}) == 3
    assert all(p.chosen == text(3) for p in pairs)
    assert pairs[0].rejected == text(1)
    capped, _ = build_preference_pairs([g], TEACHER, pairs_per_prompt=8, rng=random.Random(1))
    assert len(capped) == 4  # no more pairs than distinct wrong samples


def test_pass_at_k() -> None:
    groups = [group(text(3), text(1), text(1), text(1)), group(text(1), text(1), text(1), text(1))]
    assert pass_at_k(groups, 1) == pytest.approx((0.25 + 0.0) / 2)
    assert pass_at_k(groups, 4) == pytest.approx(0.5)
    assert pass_at_k(groups, 2) == pytest.approx((1 - 3 / 6) / 2)
