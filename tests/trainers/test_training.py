"""Real tiny TRL runs (seconds each): SFT loss drops, DPO margins grow, GRPO moves p(gold) up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from relmodel.data.jsonl import write_jsonl
from relmodel.data.schemas import GradedPair, PreferencePair
from relmodel.format import build_prompt
from relmodel.labels import Grade
from relmodel.scoring import GradeScorer
from relmodel.trainers import dpo, grpo, sft
from relmodel.trainers.difficulty import DifficultyRow
from tests.conftest import completion_for, make_cot

pytestmark = pytest.mark.slow

TRAINING: dict[str, Any] = {"epochs": 3, "learning_rate": 0.005, "batch_size": 8, "max_length": 192, "seed": 0}


def p_gold(model_dir: Path, pairs: list[GradedPair]) -> float:
    probs = GradeScorer(str(model_dir), device="cpu").score_pairs(pairs)
    return float(np.mean([probs[i, int(p.grade) - 1] for i, p in enumerate(pairs)]))


@pytest.fixture(scope="module")
def sft_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, pairs: list[GradedPair]) -> Path:
    root = tmp_path_factory.mktemp("sft")
    write_jsonl(str(root / "cot.jsonl"), make_cot(pairs))
    metrics = sft.run({"output": str(root), "model": str(tiny_model_dir), "train": str(root / "cot.jsonl"),
                       "training": TRAINING, "chat_template": False, "label_only": False})
    (root / "metrics.json").write_text(json.dumps(metrics))
    return root


def test_cot_sft_loss_drops_and_saves_a_model(sft_dir: Path, pairs: list[GradedPair]) -> None:
    metrics = json.loads((sft_dir / "metrics.json").read_text())
    assert metrics["samples"] == len(pairs) and metrics["steps"] == 18
    assert metrics["loss_last_quarter"] < 0.8 * metrics["loss_first_quarter"]
    assert metrics["mean_token_accuracy_last_quarter"] > metrics["mean_token_accuracy_first_quarter"] + 0.2
    assert (sft_dir / "model" / "config.json").exists()


def test_label_only_sft_with_lora_merges_into_a_plain_model(tmp_path: Path, tiny_model_dir: Path,
                                                            pairs: list[GradedPair]) -> None:
    write_jsonl(str(tmp_path / "train.jsonl"), pairs)
    training = {**TRAINING, "epochs": 2, "lora": {"r": 8, "alpha": 16, "dropout": 0.0}}
    metrics = sft.run({"output": str(tmp_path), "model": str(tiny_model_dir), "train": str(tmp_path / "train.jsonl"),
                       "training": training, "label_only": True})
    assert metrics["loss_last"] < metrics["loss_first"]
    assert not (tmp_path / "model" / "adapter_config.json").exists()
    assert (tmp_path / "model" / "config.json").exists()


def test_dpo_margins_and_accuracy_grow(tmp_path: Path, sft_dir: Path, pairs: list[GradedPair]) -> None:
    rows = []
    for pair in pairs[:32]:
        wrong = Grade(1 if pair.grade != Grade.IRRELEVANT else 4)
        rows.append(PreferencePair(pair_id=pair.pair_id, prompt=build_prompt(pair.query, pair.title, pair.attributes),
                                   chosen=completion_for(pair), rejected=completion_for(pair, wrong),
                                   case="self_correction"))
    write_jsonl(str(tmp_path / "pairs.jsonl"), rows)
    metrics = dpo.run({"output": str(tmp_path), "model": str(sft_dir / "model"), "train": str(tmp_path / "pairs.jsonl"),
                       "training": {**TRAINING, "epochs": 2, "learning_rate": 0.002}, "beta": 0.1})
    assert metrics["pairs"] == 32 and metrics["steps"] == 8
    assert metrics["loss_first"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 1
    assert metrics["rewards_margins_last_quarter"] > metrics["rewards_margins_first_quarter"]
    assert metrics["rewards_margins_last"] > 0 and metrics["rewards_accuracies_last"] >= 0.5


def test_grpo_rounds_raise_p_gold(tmp_path: Path, sft_dir: Path, pairs: list[GradedPair]) -> None:
    pool = [DifficultyRow(pair=p, grades=[], accuracy=0.5, verdict="kept") for p in pairs[:16]]
    write_jsonl(str(tmp_path / "pool.jsonl"), pool)
    write_jsonl(str(tmp_path / "train.jsonl"), pairs)
    params = {
        "output": str(tmp_path / "out"), "model": str(sft_dir / "model"), "train": str(tmp_path / "train.jsonl"),
        "pool": str(tmp_path / "pool.jsonl"), "training": {**TRAINING, "learning_rate": 0.003, "batch_size": 16},
        "rounds": 2, "group_size": 4, "prompts_per_round": 16, "band": {"lower": 0.0, "upper": 1.0},
        "class_balance": True, "temperature": 1.0, "max_completion_length": 8, "kl_beta": 0.02,
        "clip_epsilon": 0.2, "format_reward_weight": 0.1, "use_vllm": False,
    }
    before = p_gold(sft_dir / "model", [r.pair for r in pool])
    metrics = grpo.run(params)
    rounds = [json.loads(line) for line in (tmp_path / "out" / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds] == [1, 2] and rounds[0]["kept"] == 16 and rounds[0]["steps"] == 4
    assert rounds[1]["scored"] == 16  # round 2 re-scored fresh prompts with the current policy
    assert rounds[1]["kept"] <= rounds[1]["in_band"] <= 16
    assert rounds[0]["frac_reward_zero_std_first_step"] is not None
    assert rounds[0]["groups_trained"] == 16 and 0.0 <= rounds[0]["grade_zero_std_share"] <= 1.0  # 4 steps x 4
    assert metrics["steps"] >= 4
    assert p_gold(tmp_path / "out" / "model", [r.pair for r in pool]) > before
