"""From grade-token logprobs to probabilities, CumPT grades, tiers and the tiered ranking.

Pure functions (no I/O) so the gateway's numbers can be checked against relmodel.cumpt directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from relmodel.cumpt import cumpt_grades
from relmodel.labels import TIER_ORDER, Grade


def renormalise(logprobs: Sequence[Sequence[float]]) -> np.ndarray:
    """(n, 4) grade-token logprobs -> (n, 4) p1..p4: the four-way softmax (methods §1.5)."""
    arr = np.asarray(logprobs, dtype=np.float64)
    arr = arr - arr.max(axis=1, keepdims=True)
    weights = np.exp(arr)
    return np.asarray(weights / weights.sum(axis=1, keepdims=True))


def tier_and_rank(probs: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Grades, expected grades and the tiered order of row indices.

    Order: tier (Good, Mid, Bad); inside a tier, expected grade desc, then p4 desc, then the
    caller's order (stable) - the expected grade uses the whole distribution, not just the top.
    """
    grades = cumpt_grades(probs, beta)
    expected = probs @ np.arange(1, 5, dtype=np.float64)
    tiers = [TIER_ORDER[Grade(int(g)).tier] for g in grades]
    order = sorted(range(len(grades)), key=lambda i: (tiers[i], -expected[i], -probs[i, 3], i))
    return grades, expected, order
