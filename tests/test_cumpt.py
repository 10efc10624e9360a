import numpy as np
import pytest

from relmodel.cumpt import argmax_grades, cumpt, cumpt_grade, cumpt_grades
from relmodel.labels import Grade, Tier

# (p1, p2, p3, p4)
SPREAD = (0.1, 0.2, 0.3, 0.4)


def test_walks_from_the_top_grade_down():
    assert cumpt(SPREAD, 0.4) == (Grade.EXCELLENT, Tier.GOOD)  # p4 = 0.4 reaches beta exactly
    assert cumpt(SPREAD, 0.41) == (Grade.RELATED, Tier.GOOD)  # p4 + p3 = 0.7
    assert cumpt(SPREAD, 0.71) == (Grade.MISMATCH, Tier.MID)  # p4 + p3 + p2 = 0.9
    assert cumpt(SPREAD, 0.95) == (Grade.IRRELEVANT, Tier.BAD)


def test_beta_zero_always_grades_excellent_and_one_needs_all_mass():
    assert cumpt_grade((1.0, 0.0, 0.0, 0.0), 0.0) == Grade.EXCELLENT
    assert cumpt_grade((0.0, 0.0, 0.0, 1.0), 1.0) == Grade.EXCELLENT
    assert cumpt_grade((0.0, 0.0, 1.0, 0.0), 1.0) == Grade.RELATED
    assert cumpt_grade((0.01, 0.0, 0.0, 0.99), 1.0) == Grade.IRRELEVANT


def test_mass_exactly_at_beta_counts_despite_float_rounding():
    # 0.7 + 0.2 + 0.1 is 0.9999999999999999 in floating point.
    assert cumpt_grade((0.0, 0.1, 0.2, 0.7), 1.0) == Grade.MISMATCH
    assert cumpt_grade((0.25, 0.25, 0.25, 0.25), 0.5) == Grade.RELATED


def test_ties_at_beta_half_give_the_median():
    assert cumpt_grade((0.5, 0.0, 0.0, 0.5), 0.5) == Grade.EXCELLENT
    assert cumpt_grade((0.5, 0.0, 0.0, 0.5), 0.5000001) == Grade.IRRELEVANT


def test_larger_beta_is_never_more_lenient():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=500)
    betas = np.linspace(0, 1, 21)
    grades = np.stack([cumpt_grades(probs, b) for b in betas])
    assert (np.diff(grades, axis=0) <= 0).all()


def test_vectorised_matches_scalar():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4) * 0.5, size=300)
    for beta in (0.0, 0.3, 0.5, 0.77, 1.0):
        expected = [cumpt_grade(row, beta) for row in probs]
        assert cumpt_grades(probs, beta).tolist() == expected


def test_argmax_breaks_ties_upward():
    assert argmax_grades(np.array([[0.4, 0.1, 0.1, 0.4], [0.7, 0.1, 0.1, 0.1]])).tolist() == [4, 1]


@pytest.mark.parametrize("beta", [-0.1, 1.5, float("nan"), "0.5"])
def test_bad_beta_is_refused(beta):
    with pytest.raises(ValueError, match="beta"):
        cumpt_grade(SPREAD, beta)


@pytest.mark.parametrize(
    "probs", [(0.5, 0.5, 0.5), (0.2, 0.2, 0.2, 0.2), (-0.1, 0.5, 0.3, 0.3), (float("nan"), 0, 0, 1)]
)
def test_bad_distribution_is_refused(probs):
    with pytest.raises(ValueError):
        cumpt_grade(probs, 0.5)
