"""Band filter (strict; 0 and 1 always dropped), class balancing and the pool report."""

from __future__ import annotations

import random

import pytest

from relmodel.data.schemas import GradedPair
from relmodel.trainers.difficulty import (
    DifficultyRow,
    balance_by_grade,
    in_band,
    label_cv,
    pick_prompts,
    select_pool,
    verdict,
)


@pytest.mark.parametrize(("acc", "lower", "upper", "kept"), [
    (0.0, 0.0, 1.0, False),   # all wrong: dropped even when the band includes 0
    (1.0, 0.0, 1.0, False),   # all right: dropped even when the band includes 1
    (0.01, 0.01, 0.9, False),  # boundaries are strict
    (0.9, 0.01, 0.9, False),
    (0.5, 0.01, 0.9, True),
    (0.125, 0.01, 0.9, True),
    (0.875, 0.01, 0.9, True),
])
def test_in_band(acc: float, lower: float, upper: float, kept: bool) -> None:
    assert in_band(acc, lower, upper) is kept


def test_verdict_names_why() -> None:
    assert verdict(0.0, 0.01, 0.9) == "too_hard"
    assert verdict(0.95, 0.01, 0.9) == "too_easy"
    assert verdict(1.0, 0.0, 1.0) == "too_easy"
    assert verdict(0.0, 0.0, 1.0) == "too_hard"


def test_balance_by_grade_downsamples_to_smallest_present_class() -> None:
    rows = [1] * 5 + [2] * 3 + [4] * 7  # grade 3 absent
    kept = balance_by_grade(rows, lambda g: g, random.Random(0))
    assert sorted(kept) == [1, 1, 1, 2, 2, 2, 4, 4, 4]
    assert balance_by_grade([], lambda g: g, random.Random(0)) == []


def test_balance_is_seeded() -> None:
    rows = list(range(40))
    grade = lambda i: 1 + i % 4 if i < 32 else 1  # noqa: E731
    assert balance_by_grade(rows, grade, random.Random(3)) == balance_by_grade(rows, grade, random.Random(3))


def test_label_cv() -> None:
    assert label_cv([1, 2, 3, 4] * 3) == 0.0
    assert label_cv([1, 1, 2, 2, 3, 3]) == pytest.approx(0.57735, abs=1e-4)  # counts 2,2,2,0
    assert label_cv([]) == 0.0


def _row(grade: int, accuracy: float, k: int) -> DifficultyRow:
    pair = GradedPair(query="q", item_id=f"i{k}", title="t", grade=grade)
    return DifficultyRow(pair=pair, grades=[], accuracy=accuracy, verdict=verdict(accuracy, 0.01, 0.9))


def test_select_pool_reports_drops_and_cv() -> None:
    rows = ([_row(4, 0.5, k) for k in range(6)] + [_row(2, 0.25, 10 + k) for k in range(2)]
            + [_row(1, 0.0, 20), _row(3, 1.0, 21), _row(3, 0.95, 22)])
    pool, report = select_pool(rows, class_balance=True, rng=random.Random(0))
    assert report["too_hard"] == 1 and report["too_easy"] == 2 and report["in_band"] == 8
    assert report["kept"] == len(pool) == 4 and report["dropped_by_balance"] == 4
    assert report["classes_kept"] == {"1": 0, "2": 2, "3": 0, "4": 2}
    assert report["cv_after"] < report["cv_before"]
    unbalanced, _ = select_pool(rows, class_balance=False, rng=random.Random(0))
    assert len(unbalanced) == 8


def test_pick_prompts_prefers_fresh_ones() -> None:
    pairs = [GradedPair(query="q", item_id=f"i{k}", title="t", grade=1) for k in range(10)]
    used = {p.pair_id for p in pairs[:7]}
    picked = pick_prompts(pairs, 5, random.Random(0), exclude=used)
    assert {p.item_id for p in picked} == {"i7", "i8", "i9"}
