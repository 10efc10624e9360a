import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from relmodel.metrics import classification_report


@pytest.mark.parametrize("seed", range(5))
def test_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    gold = rng.choice([1, 2, 3, 4], size=200, p=[0.1, 0.35, 0.05, 0.5])
    pred = np.where(rng.random(200) < 0.6, gold, rng.integers(1, 5, size=200))
    report = classification_report(gold, pred)
    labels = [1, 2, 3, 4]
    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)
    for i, grade in enumerate(labels):
        m = report.per_class[grade]
        assert (m.precision, m.recall, m.f1, m.support) == pytest.approx((p[i], r[i], f[i], s[i]))
    assert report.macro_f1 == pytest.approx(f1_score(gold, pred, labels=labels, average="macro", zero_division=0))
    assert report.accuracy == pytest.approx(accuracy_score(gold, pred))
    assert report.confusion == confusion_matrix(gold, pred, labels=labels).tolist()


def test_a_class_never_predicted_scores_zero_not_nan():
    report = classification_report([1, 2, 3, 4], [1, 1, 3, 4])
    assert report.per_class[2].f1 == 0.0
    assert report.macro_f1 == pytest.approx((2 / 3 + 0 + 1 + 1) / 4)


def test_rejects_grades_outside_the_scale_and_length_mismatch():
    with pytest.raises(ValueError, match=r"1\.\.4"):
        classification_report([1, 5], [1, 1])
    with pytest.raises(ValueError, match="length"):
        classification_report([1, 2], [1])
