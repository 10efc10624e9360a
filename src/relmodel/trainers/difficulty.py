"""Difficulty-aware dynamic sampling for GRPO (TaoSR1 §1.7) - ours: TRL has no group filter that
drops and refills prompts (trl issue #3708), so it runs as a pre-pass before each GRPO round.

1. Sample G rollouts per prompt from the current policy; group accuracy = share whose leading
   grade equals gold (the reward's `is_equivalent`).
2. Keep prompts with lower < acc < upper, strictly: all-wrong groups (too hard) and all-correct
   groups (too easy) carry no group-relative advantage, so 0 and 1 always drop.
3. Class-balance the kept pool by gold grade (down-sample every grade to the rarest present
   one): TaoSR1 found that the label distribution's coefficient of variation (CV) of the RL pool
   correlates negatively with final quality, and a balanced pool (CV = 0) did best.

Rollouts stop after ROLLOUT_TOKENS tokens: accuracy depends only on the leading grade, and the
first tokens of a sampled completion have the same distribution however long it would run, so
decoding the rationale here would cost ~50x for the same estimate.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from relmodel.data.schemas import GradedPair, GradeField
from relmodel.format import leading_grade
from relmodel.labels import GRADES
from relmodel.trainers.common import prompt_of
from relmodel.trainers.sampling import GenerationSettings, cached_policy, generate

ROLLOUT_TOKENS = 2  # the grade and the character after it: enough to decide `leading_grade`
T = TypeVar("T")
Verdict = Literal["kept", "too_easy", "too_hard"]


class DifficultyRow(BaseModel):
    """One scored prompt: its rollouts' leading grades, group accuracy and band verdict."""

    model_config = ConfigDict(extra="forbid")

    pair: GradedPair
    grades: list[GradeField | None]
    accuracy: float
    verdict: Verdict


def in_band(accuracy: float, lower: float, upper: float) -> bool:
    """lower < accuracy < upper, and never 0 or 1 whatever the band says (no signal there)."""
    return lower < accuracy < upper and 0.0 < accuracy < 1.0


def verdict(accuracy: float, lower: float, upper: float) -> Verdict:
    if in_band(accuracy, lower, upper):
        return "kept"
    return "too_hard" if accuracy <= lower or accuracy <= 0.0 else "too_easy"


def balance_by_grade(rows: Sequence[T], grade_of: Callable[[T], int], rng: random.Random) -> list[T]:
    """Down-sample every gold grade to the count of the rarest grade present; keeps input order."""
    by_grade: dict[int, list[int]] = {}
    for index, row in enumerate(rows):
        by_grade.setdefault(int(grade_of(row)), []).append(index)
    if not by_grade:
        return []
    smallest = min(len(indices) for indices in by_grade.values())
    keep = sorted(i for indices in by_grade.values() for i in rng.sample(indices, smallest))
    return [rows[i] for i in keep]


def label_cv(grades: Iterable[int]) -> float:
    """Coefficient of variation (std / mean) of the counts of the four grades (absent grades count 0)."""
    counts = Counter(int(g) for g in grades)
    values = np.array([counts.get(int(g), 0) for g in GRADES], dtype=float)
    return float(values.std() / values.mean()) if values.sum() else 0.0


def class_counts(pairs: Iterable[GradedPair]) -> dict[str, int]:
    counts = Counter(int(p.grade) for p in pairs)
    return {str(int(g)): counts.get(int(g), 0) for g in GRADES}


def score_difficulty(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[GradedPair], *,
                     group_size: int, temperature: float, lower: float, upper: float, seed: int,
                     chat_template: bool = False, use_vllm: bool = False, model_path: str | None = None,
                     ) -> list[DifficultyRow]:
    """G sampled leading grades per pair -> group accuracy and verdict."""
    settings = GenerationSettings(num_samples=group_size, temperature=temperature, max_new_tokens=ROLLOUT_TOKENS,
                                  seed=seed, use_vllm=use_vllm, batch_size=max(64, 4 * group_size))
    prompts = [prompt_of(p, tokenizer, chat_template) for p in pairs]
    rows = []
    for pair, texts in zip(pairs, generate(model, tokenizer, prompts, settings, model_path), strict=True):
        grades = [leading_grade(t) for t in texts]
        accuracy = sum(g == pair.grade for g in grades) / len(grades)
        rows.append(DifficultyRow(pair=pair, grades=grades, accuracy=accuracy,
                                  verdict=verdict(accuracy, lower, upper)))
    return rows


def select_pool(rows: Sequence[DifficultyRow], class_balance: bool,
                rng: random.Random) -> tuple[list[DifficultyRow], dict[str, Any]]:
    """The band-kept rows, class-balanced when asked, and a report of what was dropped and why."""
    kept = [r for r in rows if r.verdict == "kept"]
    pool = balance_by_grade(kept, lambda r: int(r.pair.grade), rng) if class_balance else kept
    report = {
        "scored": len(rows),
        "too_easy": sum(r.verdict == "too_easy" for r in rows),
        "too_hard": sum(r.verdict == "too_hard" for r in rows),
        "in_band": len(kept),
        "kept": len(pool),
        "dropped_by_balance": len(kept) - len(pool),
        "mean_accuracy": round(float(np.mean([r.accuracy for r in rows])), 4) if rows else 0.0,
        "classes_in_band": class_counts(r.pair for r in kept),
        "classes_kept": class_counts(r.pair for r in pool),
        "cv_before": round(label_cv(int(r.pair.grade) for r in kept), 4),
        "cv_after": round(label_cv(int(r.pair.grade) for r in pool), 4),
    }
    return pool, report


def difficulty_shard(rows: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """Celery shard function (tasks.shards.run_sharded): GradedPair rows -> DifficultyRow rows."""
    pairs = [GradedPair.model_validate(row) for row in rows]
    if not pairs:
        return {"rows": [], "counts": {"scored": 0}}
    model, tokenizer = cached_policy(params["model"])
    band = params["band"]
    scored = score_difficulty(
        model, tokenizer, pairs, group_size=int(params["group_size"]), temperature=float(params["temperature"]),
        lower=float(band["lower"]), upper=float(band["upper"]), seed=int(params.get("seed", 0)),
        chat_template=bool(params.get("chat_template", False)), use_vllm=bool(params.get("use_vllm", False)),
        model_path=str(getattr(model.config, "_name_or_path", "")) or None,
    )
    return {"rows": [r.model_dump(mode="json") for r in scored], "counts": {"scored": len(scored)}}


def pick_prompts(pairs: Sequence[GradedPair], count: int, rng: random.Random,
                 exclude: set[str] | None = None) -> list[GradedPair]:
    """`count` fresh prompts (not in `exclude` while any remain), in a seeded random order."""
    exclude = exclude or set()
    fresh = [p for p in pairs if p.pair_id not in exclude] or list(pairs)
    return rng.sample(fresh, min(count, len(fresh)))
