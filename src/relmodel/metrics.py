"""Classification metrics over the four grades (the paper's table: per-class F1, macro-F1, accuracy).

Written with numpy so that the trainer images need no scikit-learn; the tests cross-check every
number against scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from relmodel.labels import GRADES

Grades = Sequence[int] | npt.NDArray[np.int64]


@dataclass(frozen=True)
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ClassificationReport:
    accuracy: float
    macro_f1: float
    per_class: dict[int, ClassMetrics]
    confusion: list[list[int]]  # rows: gold grade 1..4, columns: predicted grade 1..4
    count: int

    def to_dict(self) -> dict[str, object]:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": {str(g): asdict(m) for g, m in self.per_class.items()},
            "confusion": self.confusion,
            "count": self.count,
        }


def confusion_matrix(gold: Grades, pred: Grades) -> np.ndarray:
    """4x4 counts, rows gold 1..4, columns predicted 1..4."""
    g = np.asarray(gold, dtype=np.int64)
    p = np.asarray(pred, dtype=np.int64)
    if g.shape != p.shape:
        raise ValueError(f"gold and pred differ in length: {g.shape} vs {p.shape}")
    for name, arr in (("gold", g), ("pred", p)):
        if arr.size and (arr.min() < 1 or arr.max() > 4):
            raise ValueError(f"{name} grades must be in 1..4")
    matrix = np.zeros((4, 4), dtype=np.int64)
    np.add.at(matrix, (g - 1, p - 1), 1)
    return matrix


def classification_report(gold: Grades, pred: Grades) -> ClassificationReport:
    """Per-class precision/recall/F1 (0 where undefined), macro-F1 over the four grades, accuracy."""
    matrix = confusion_matrix(gold, pred)
    total = int(matrix.sum())
    per_class: dict[int, ClassMetrics] = {}
    for i, grade in enumerate(GRADES):
        tp = int(matrix[i, i])
        predicted = int(matrix[:, i].sum())
        actual = int(matrix[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[int(grade)] = ClassMetrics(precision, recall, f1, actual)
    return ClassificationReport(
        accuracy=float(np.trace(matrix)) / total if total else 0.0,
        macro_f1=float(np.mean([m.f1 for m in per_class.values()])),
        per_class=per_class,
        confusion=matrix.tolist(),
        count=total,
    )
