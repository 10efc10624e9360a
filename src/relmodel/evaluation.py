"""The `eval` step: score the eval split with every stage's model, calibrate CumPT, write the report.

For each stage row (label-only SFT, CoT-SFT, +DPO, +GRPO) it reads the four grade probabilities
of every pair (one prefill per query, no decoding), then reports per-class F1, macro-F1 and
accuracy for argmax and for CumPT, and grid-searches beta. The served model's beta (unless the
spec pins one) becomes the CumPT config the serve step rolls out.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from relmodel import storage
from relmodel.cumpt import argmax_grades, cumpt_grades
from relmodel.data.jsonl import read_jsonl
from relmodel.data.schemas import GradedPair
from relmodel.metrics import classification_report
from relmodel.steps import step_main

METRICS_FILE = "metrics.json"


def beta_sweep(gold: Sequence[int], probs: np.ndarray, grid: Sequence[float]) -> list[tuple[float, float]]:
    """(beta, CumPT macro-F1) for each beta of the grid."""
    return [(beta, classification_report(gold, cumpt_grades(probs, beta)).macro_f1) for beta in grid]


def best_beta(sweep: Sequence[tuple[float, float]]) -> float:
    """The beta with the highest macro-F1; among ties, the one closest to 0.5 (the median rule)."""
    top = max(f1 for _, f1 in sweep)
    return min((b for b, f1 in sweep if f1 >= top - 1e-12), key=lambda b: (abs(b - 0.5), b))


def evaluate_probs(pairs: Sequence[GradedPair], probs: np.ndarray, grid: Sequence[float],
                   beta: float | None) -> dict[str, Any]:
    """Argmax and CumPT metrics of one model's grade probabilities on graded pairs."""
    gold = [int(p.grade) for p in pairs]
    sweep = beta_sweep(gold, probs, grid)
    chosen = beta if beta is not None else best_beta(sweep)
    cumpt_pred = cumpt_grades(probs, chosen)
    by_type: dict[str, float] = {}
    for query_type in sorted({p.query_type for p in pairs}):
        idx = [i for i, p in enumerate(pairs) if p.query_type == query_type]
        by_type[query_type] = classification_report([gold[i] for i in idx], cumpt_pred[idx]).macro_f1
    return {
        "argmax": classification_report(gold, argmax_grades(probs)).to_dict(),
        "cumpt": classification_report(gold, cumpt_pred).to_dict(),
        "beta": chosen,
        "beta_sweep": sweep,
        "cumpt_macro_f1_by_query_type": by_type,
    }


def run(params: dict[str, Any]) -> dict[str, Any]:
    from relmodel.scoring import GradeScorer  # torch is imported only where a model is scored

    pairs = read_jsonl(params["eval"], GradedPair)
    grid: list[float] = params["beta_grid"]
    rows: dict[str, Any] = {}
    serve_row, grade_ids = None, None
    for name, model_uri in params["models"].items():
        scorer = GradeScorer(model_uri, chat_template=params.get("chat_template", False))
        probs = scorer.score_pairs(pairs)
        rows[name] = {"model": model_uri, **evaluate_probs(pairs, probs, grid, params.get("beta")),
                      "training": _stage_result(model_uri)}
        if model_uri == params["serve_model"]:
            serve_row, grade_ids = name, scorer.grade_ids
    if serve_row is None:
        raise ValueError("the model to serve was not among the evaluated models")
    served = rows[serve_row]
    metrics = {
        "serve_row": serve_row,
        "serve_model": params["serve_model"],
        "beta": served["beta"],
        "macro_f1": served["cumpt"]["macro_f1"],
        "accuracy": served["cumpt"]["accuracy"],
        "argmax_macro_f1": served["argmax"]["macro_f1"],
        "grade_token_ids": grade_ids,
        "eval_pairs": len(pairs),
        "lineage": _lineage(params),
    }
    report = {**metrics, "rows": rows}
    storage.write_text(storage.join(params["output"], METRICS_FILE), _json(report))
    from relmodel.report import write_report

    write_report(params["output"], report)
    return metrics


def _stage_result(model_uri: str) -> dict[str, Any]:
    """The training step's own result.json (losses, curves) next to its model directory."""
    from relmodel.steps import read_result

    return read_result(model_uri.rsplit("/model", 1)[0]) or {}


def _lineage(params: dict[str, Any]) -> dict[str, Any]:
    """data hash -> checkpoints -> metrics: the files and models this evaluation depends on."""
    from relmodel.steps import read_result

    data_dir = params["eval"].rsplit("/", 1)[0]
    data = read_result(data_dir) or {}
    return {"data": data_dir, "data_sha256": data.get("sha256", {}), "models": params["models"]}


def _json(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, default=float)  # rows keep stage order


def main(argv: Sequence[str] | None = None) -> int:
    return step_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
