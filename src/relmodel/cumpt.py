"""CumPT: Cumulative Probability Tiering.

One threshold beta replaces a set of per-grade thresholds: walk from the top grade down,
accumulating probability mass, and stop at the first grade where the mass reaches beta.
Equivalently the grade is the largest k with sum_{j>=k} p_j >= beta (at beta=0.5, the median
of the ordinal distribution). A larger beta is stricter: fewer items are graded high.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from relmodel.labels import Grade, Tier

# Sums of four floats that "equal" beta on paper may land a few ulps below it (0.7+0.2+0.1).
MASS_TOLERANCE = 1e-9
DEFAULT_BETA = 0.5


def check_beta(beta: float) -> float:
    if not (isinstance(beta, int | float) and math.isfinite(beta) and 0.0 <= beta <= 1.0):
        raise ValueError(f"CumPT beta must be a number in [0, 1], got {beta!r}")
    return float(beta)


def check_probs(probs: Sequence[float]) -> tuple[float, float, float, float]:
    """Validate a (p1, p2, p3, p4) distribution over the four grades."""
    if len(probs) != 4:
        raise ValueError(f"expected 4 grade probabilities (p1..p4), got {len(probs)}")
    values = tuple(float(p) for p in probs)
    if any(not math.isfinite(p) or p < 0.0 for p in values):
        raise ValueError(f"grade probabilities must be finite and non-negative, got {values}")
    if abs(sum(values) - 1.0) > 1e-4:
        raise ValueError(f"grade probabilities must sum to 1, got sum {sum(values):.6f}")
    return values  # type: ignore[return-value]


def cumpt_grade(probs: Sequence[float], beta: float = DEFAULT_BETA) -> Grade:
    """The CumPT grade of one (p1, p2, p3, p4) distribution."""
    p = check_probs(probs)
    beta = check_beta(beta)
    mass = 0.0
    for grade in (Grade.EXCELLENT, Grade.RELATED, Grade.MISMATCH):
        mass += p[grade - 1]
        if mass >= beta - MASS_TOLERANCE:
            return grade
    return Grade.IRRELEVANT


def cumpt(probs: Sequence[float], beta: float = DEFAULT_BETA) -> tuple[Grade, Tier]:
    grade = cumpt_grade(probs, beta)
    return grade, grade.tier


def cumpt_grades(probs: np.ndarray, beta: float = DEFAULT_BETA) -> np.ndarray:
    """Vectorised CumPT over an (n, 4) array of (p1..p4) rows; returns grades 1..4."""
    beta = check_beta(beta)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != 4:
        raise ValueError(f"expected an (n, 4) array of grade probabilities, got shape {probs.shape}")
    # mass_from_top[:, k] = p4 + ... + p_{4-k}: the mass at grade 4-k or better.
    mass_from_top = np.cumsum(probs[:, ::-1], axis=1)[:, :3]
    reached = mass_from_top >= beta - MASS_TOLERANCE
    first = np.where(reached.any(axis=1), reached.argmax(axis=1), 3)
    return (4 - first).astype(np.int64)


def argmax_grades(probs: np.ndarray) -> np.ndarray:
    """Argmax grade per row; ties go to the higher grade, as CumPT at beta=0.5 would lean."""
    probs = np.asarray(probs, dtype=np.float64)
    return (4 - np.argmax(probs[:, ::-1], axis=1)).astype(np.int64)
