import json

import numpy as np

from relmodel.data.schemas import GradedPair
from relmodel.evaluation import best_beta, beta_sweep, evaluate_probs
from relmodel.report import REPORT_FILE, stage_table, write_report


def pairs_with(grades, query_type="head"):
    return [GradedPair(query=f"q{i // 4}", item_id=f"i{i}", title="t", grade=g, query_type=query_type)
            for i, g in enumerate(grades)]


def one_hot(grades, sharpness=0.97):
    probs = np.full((len(grades), 4), (1 - sharpness) / 3)
    probs[np.arange(len(grades)), np.asarray(grades) - 1] = sharpness
    return probs


def test_best_beta_prefers_the_highest_macro_f1_then_the_median_rule():
    assert best_beta([(0.3, 0.5), (0.4, 0.7), (0.6, 0.7), (0.5, 0.6)]) == 0.4  # ties: closest to 0.5, lower first
    assert best_beta([(0.3, 0.2), (0.5, 0.2), (0.8, 0.9)]) == 0.8


def test_confident_correct_probabilities_score_perfectly_under_both_rules():
    grades = [1, 2, 3, 4] * 6
    result = evaluate_probs(pairs_with(grades), one_hot(grades), [0.3, 0.5, 0.7], beta=None)
    assert result["argmax"]["macro_f1"] == 1.0 and result["cumpt"]["macro_f1"] == 1.0
    assert result["beta"] == 0.5


def test_calibration_moves_beta_toward_the_grade_a_model_underrates():
    # The model puts gold 4s at p4 = 0.45 (argmax says 4 only thanks to the spread); beta above 0.45 demotes them.
    gold = [4] * 10 + [3] * 10
    probs = np.array([[0.05, 0.05, 0.45, 0.45]] * 10 + [[0.05, 0.15, 0.5, 0.3]] * 10)
    sweep = dict(beta_sweep(gold, probs, [0.3, 0.4, 0.5, 0.6]))
    assert sweep[0.4] > sweep[0.5]
    assert evaluate_probs(pairs_with(gold), probs, [0.3, 0.4, 0.5, 0.6], beta=None)["beta"] == 0.4


def test_a_pinned_beta_is_used_as_is():
    grades = [1, 2, 3, 4] * 3
    assert evaluate_probs(pairs_with(grades), one_hot(grades), [0.3, 0.5], beta=0.77)["beta"] == 0.77


def test_report_writes_the_table_and_plots(tmp_path):
    grades = [1, 2, 3, 4] * 5
    row = {"model": "m", **evaluate_probs(pairs_with(grades), one_hot(grades, 0.6), [0.4, 0.5, 0.6], None),
           "training": {"loss_curve": [[1, 2.0], [2, 1.5]]}}
    report = {"rows": {"CoT-SFT": row}, "serve_row": "CoT-SFT", "serve_model": "m", "beta": row["beta"],
              "macro_f1": row["cumpt"]["macro_f1"], "argmax_macro_f1": row["argmax"]["macro_f1"],
              "eval_pairs": 20, "lineage": {"data": "d", "data_sha256": {"eval.jsonl": "ab" * 32}, "models": {}}}
    write_report(str(tmp_path), report)
    text = (tmp_path / REPORT_FILE).read_text()
    assert "| CoT-SFT | argmax | 100.00 |" in text and "CumPT β=0.50" in text
    for png in ("beta_sweep.png", "confusion.png", "training_curves.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    assert [r["rule"] for r in stage_table(report)] == ["argmax", "CumPT β=0.50"]
    json.dumps(report)

