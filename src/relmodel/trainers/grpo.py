"""The `grpo` step: GRPO with difficulty-aware dynamic sampling, in rounds (TaoSR1 §1.7).

Round 1 trains on the pool the `difficulty` step picked with the DPO policy. Every later round
draws `prompts_per_round` fresh training prompts, scores them with the CURRENT policy
(`difficulty.score_difficulty`), keeps the band, class-balances, and trains one pass of TRL's
GRPOTrainer on what is left. The band filter is why TRL's `frac_reward_zero_std` (share of
groups whose rewards are all equal, i.e. no gradient) should sit near 0 at the start of a round;
rounds.jsonl records it next to what was dropped and why. TRL computes it on the weighted sum of
both rewards; `grade_zero_std_share` counts, over every trained group, those whose *grade* rewards
are all equal (all right or all wrong): the groups the band is meant to keep out. The band is
applied to the difficulty scoring's rollouts, and TRL trains on fresh ones, so that share is small
but not 0 by construction (DAPO-style filtering of the trained rollouts themselves is TRL #3708).

Rewards: `grade_reward` (1 if the leading grade is gold) + format_reward_weight * `format_reward`.
The KL reference is the step's input model for every round (TRL rebuilds it from the model's
original path; with LoRA the adapter is merged after each round, so the reference is that round's
start).

    python -m relmodel.trainers.grpo --config params.json
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from relmodel import storage
from relmodel.data.jsonl import read_jsonl
from relmodel.data.schemas import GradedPair
from relmodel.errors import DataError
from relmodel.spec import TrainingSpec
from relmodel.steps import step_main
from relmodel.trainers.common import (
    first_last,
    has_vllm_gpu,
    load_policy,
    lora_config,
    prompt_of,
    save_policy,
    scratch_dir,
    seed_everything,
    series,
    training_spec,
    trl_kwargs,
)
from relmodel.trainers.difficulty import DifficultyRow, pick_prompts, score_difficulty, select_pool
from relmodel.trainers.rewards import GOLD_COLUMN, format_reward, grade_reward

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GRPOStageConfig:
    model: str
    train: str
    pool: str
    output: str
    training: TrainingSpec
    chat_template: bool = False
    rounds: int = 2
    group_size: int = 8
    prompts_per_round: int = 64
    lower: float = 0.01
    upper: float = 0.9
    class_balance: bool = True
    temperature: float = 1.0
    max_completion_length: int = 160
    kl_beta: float = 0.02
    clip_epsilon: float = 0.2
    format_reward_weight: float = 0.1
    use_vllm: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> GRPOStageConfig:
        band = params.get("band") or {}
        return cls(
            model=params["model"], train=params["train"], pool=params["pool"], output=params["output"],
            training=training_spec(params), chat_template=bool(params.get("chat_template", False)),
            rounds=int(params.get("rounds", 2)), group_size=int(params.get("group_size", 8)),
            prompts_per_round=int(params.get("prompts_per_round", 64)),
            lower=float(band.get("lower", 0.01)), upper=float(band.get("upper", 0.9)),
            class_balance=bool(params.get("class_balance", True)),
            temperature=float(params.get("temperature", 1.0)),
            max_completion_length=int(params.get("max_completion_length", 160)),
            kl_beta=float(params.get("kl_beta", 0.02)), clip_epsilon=float(params.get("clip_epsilon", 0.2)),
            format_reward_weight=float(params.get("format_reward_weight", 0.1)),
            use_vllm=bool(params.get("use_vllm", False)),
        )

    def prompts_per_batch(self, pool_size: int) -> int:
        """Prompts per optimizer step: the batch in whole groups, never more than the pool holds."""
        return max(1, min(pool_size, math.ceil(self.training.batch_size / self.group_size)))

    def grpo_args(self, scratch: str, round_index: int, pool_size: int) -> GRPOConfig:
        """TRL settings for one round. Deviations from TRL defaults: beta (0.0 in TRL) = kl_beta; the
        batch rounded up to whole groups (TRL counts completions, not prompts); max_steps = one pass
        over the pool (unless training.maxSteps caps it), so a pool smaller than a batch still trains."""
        kwargs = trl_kwargs(self.training, scratch)
        batch = self.prompts_per_batch(pool_size) * self.group_size
        one_pass = math.ceil(pool_size * self.group_size / (batch * self.training.gradient_accumulation_steps))
        kwargs["per_device_train_batch_size"] = batch
        kwargs["max_steps"] = self.training.max_steps if self.training.max_steps > 0 else max(1, one_pass)
        kwargs["seed"] = self.training.seed + round_index
        use_vllm = self.use_vllm and has_vllm_gpu()
        return GRPOConfig(
            **kwargs, num_generations=self.group_size, beta=self.kl_beta, epsilon=self.clip_epsilon,
            max_completion_length=self.max_completion_length, temperature=self.temperature,
            reward_weights=[1.0, self.format_reward_weight], use_vllm=use_vllm, vllm_mode="colocate",
        )


class ZeroVarianceGroups:
    """A reward function that also counts the groups of `group_size` consecutive completions (one
    prompt's rollouts, as TRL orders them) whose rewards are all equal; TRL calls it like the wrapped one."""

    def __init__(self, reward: Callable[..., list[float]], group_size: int) -> None:
        self.reward, self.group_size = reward, group_size
        self.__name__ = reward.__name__  # TRL names the reward's logged metrics after it
        self.groups = self.zero_variance = 0

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float]:
        rewards = self.reward(completions, **kwargs)
        for start in range(0, len(rewards), self.group_size):
            self.groups += 1
            self.zero_variance += len(set(rewards[start : start + self.group_size])) == 1
        return rewards

    @property
    def share(self) -> float | None:
        return round(self.zero_variance / self.groups, 4) if self.groups else None


def _round_record(round_index: int, report: dict[str, Any], history: list[dict[str, Any]],
                  grade_groups: ZeroVarianceGroups) -> dict[str, Any]:
    zero_std = series(history, "frac_reward_zero_std")
    reward = series(history, "reward")
    return {
        "round": round_index, **report,
        "steps": len(series(history, "loss")),
        "groups_trained": grade_groups.groups,
        "grade_zero_std_share": grade_groups.share,
        "frac_reward_zero_std_first_step": zero_std[0] if zero_std else None,
        "frac_reward_zero_std_mean": round(sum(zero_std) / len(zero_std), 4) if zero_std else None,
        "reward_first": reward[0] if reward else None,
        "reward_last": reward[-1] if reward else None,
        "grade_reward_mean": _mean(series(history, "rewards/grade_reward/mean")),
    }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _first_round_pool(config: GRPOStageConfig, rng: random.Random) -> tuple[list[DifficultyRow], dict[str, Any]]:
    """The difficulty step's pool; its report is rebuilt from the scored rows written beside it."""
    pool = read_jsonl(config.pool, DifficultyRow)
    scored_uri = config.pool.rsplit("/", 1)[0] + "/difficulty.jsonl"
    if storage.exists(scored_uri):
        _, report = select_pool(read_jsonl(scored_uri, DifficultyRow), config.class_balance, rng)
        report["kept"] = len(pool)
    else:
        report = {"scored": None, "kept": len(pool)}
    return pool, report


def train_grpo(config: GRPOStageConfig) -> dict[str, Any]:
    seed_everything(config.training.seed)
    model, tokenizer = load_policy(config.model, config.training)
    train_pairs = read_jsonl(config.train, GradedPair)
    used: set[str] = set()
    records: list[dict[str, Any]] = []
    history_all: list[dict[str, Any]] = []
    for round_index in range(1, config.rounds + 1):
        rng = random.Random(config.training.seed * 1000 + round_index)
        if round_index == 1:
            pool, report = _first_round_pool(config, rng)
        else:
            fresh = pick_prompts(train_pairs, config.prompts_per_round, rng, exclude=used)
            scored = score_difficulty(model, tokenizer, fresh, group_size=config.group_size,
                                      temperature=config.temperature, lower=config.lower, upper=config.upper,
                                      seed=config.training.seed + round_index, chat_template=config.chat_template)
            pool, report = select_pool(scored, config.class_balance, rng)
        used.update(row.pair.pair_id for row in pool)
        if not pool:
            log.warning("grpo round %d: no prompt in the band, nothing to train on", round_index)
            records.append({"round": round_index, **report, "steps": 0})
            continue
        # TRL drops a last partial batch; repeat a few pool prompts so that every prompt is trained on.
        per_batch = config.prompts_per_batch(len(pool))
        padded = pool + pool[: (-len(pool)) % per_batch]
        dataset = Dataset.from_list([
            {"prompt": prompt_of(row.pair, tokenizer, config.chat_template), GOLD_COLUMN: int(row.pair.grade)}
            for row in padded
        ])
        with scratch_dir() as scratch:
            grade_groups = ZeroVarianceGroups(grade_reward, config.group_size)
            reward_funcs: list[Any] = [grade_groups, format_reward]  # TRL's RewardFunc wants list[float | None]
            trainer = GRPOTrainer(model=model, reward_funcs=reward_funcs,
                                  args=config.grpo_args(scratch, round_index, len(padded)), train_dataset=dataset,
                                  processing_class=tokenizer, peft_config=lora_config(config.training.lora))
            trainer.train()
        model = cast(Any, trainer.model)
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()  # the next round starts from a plain model again
        history = list(trainer.state.log_history)
        history_all.extend(history)
        record = _round_record(round_index, report, history, grade_groups)
        records.append(record)
        log.info("grpo round %d: %s", round_index, record)

    if not history_all:
        raise DataError("grpo: no round had a prompt inside the difficulty band; nothing was trained")
    with storage.atomic_write(storage.join(config.output, "rounds.jsonl")) as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    save_policy(model, tokenizer, config.output)
    return {
        "rounds": len(records),
        "prompts_trained": sum(int(r.get("kept") or 0) for r in records),
        "steps": sum(int(r.get("steps") or 0) for r in records),
        "frac_reward_zero_std_first_step": [r.get("frac_reward_zero_std_first_step") for r in records],
        "grade_zero_std_share": [r.get("grade_zero_std_share") for r in records],
        **first_last(history_all, "reward"),
        **first_last(history_all, "rewards/grade_reward/mean", "grade_reward"),
        **first_last(history_all, "kl"),
        # Each round's trainer counts steps from 1 again: number them across rounds.
        "reward_curve": [[float(i), value] for i, value in enumerate(series(history_all, "reward"), 1)],
    }


def run(params: dict[str, Any]) -> dict[str, Any]:
    return train_grpo(GRPOStageConfig.from_params(params))


def main(argv: Sequence[str] | None = None) -> int:
    return step_main(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
