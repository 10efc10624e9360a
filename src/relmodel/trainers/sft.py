"""The `sft` and `baseline` steps: supervised fine-tuning with TRL's SFTTrainer.

CoT-SFT trains on the teacher's post-CoT completions (grade first, then the five steps); the
label-only baseline (`label_only: true`) trains on the bare grade. Both are prompt/completion
datasets, so the loss covers the completion only (plain next-token loss, as in the paper).

    python -m relmodel.trainers.sft --config params.json
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datasets import Dataset
from transformers import PreTrainedTokenizerBase
from trl import SFTConfig, SFTTrainer

from relmodel.data.jsonl import read_jsonl
from relmodel.data.schemas import CoTRecord, GradedPair
from relmodel.errors import DataError
from relmodel.format import format_label_only
from relmodel.spec import TrainingSpec
from relmodel.steps import step_main
from relmodel.trainers.common import (
    curve,
    first_last,
    load_policy,
    lora_config,
    prompt_of,
    save_policy,
    scratch_dir,
    seed_everything,
    training_spec,
    trl_kwargs,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTStageConfig:
    """Settings of one SFT run (the planner's params for `sft` / `baseline`)."""

    model: str
    train: str
    output: str
    training: TrainingSpec
    chat_template: bool = False
    label_only: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> SFTStageConfig:
        return cls(model=params["model"], train=params["train"], output=params["output"],
                   training=training_spec(params), chat_template=bool(params.get("chat_template", False)),
                   label_only=bool(params.get("label_only", False)))


def build_dataset(config: SFTStageConfig, tokenizer: PreTrainedTokenizerBase) -> Dataset:
    """prompt/completion rows: GradedPair -> bare grade (baseline), CoTRecord -> its completion."""
    rows: list[dict[str, str]]
    if config.label_only:
        pairs = read_jsonl(config.train, GradedPair)
        rows = [{"prompt": prompt_of(p, tokenizer, config.chat_template), "completion": format_label_only(p.grade)}
                for p in pairs]
    else:
        records = read_jsonl(config.train, CoTRecord)
        rows = [{"prompt": prompt_of(r.pair, tokenizer, config.chat_template), "completion": r.completion}
                for r in records]
    if not rows:
        raise DataError(f"{config.train}: no training rows")
    return Dataset.from_list(rows)


def train_sft(config: SFTStageConfig) -> dict[str, Any]:
    seed_everything(config.training.seed)
    model, tokenizer = load_policy(config.model, config.training)
    dataset = build_dataset(config, tokenizer)
    with scratch_dir() as scratch:
        args = SFTConfig(**trl_kwargs(config.training, scratch), max_length=config.training.max_length,
                         completion_only_loss=True, packing=False)
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=lora_config(config.training.lora))
        result = trainer.train()
    history = trainer.state.log_history
    save_policy(trainer.model, tokenizer, config.output)
    metrics = {
        "samples": len(dataset),
        "steps": trainer.state.global_step,
        "train_loss": round(float(result.training_loss), 5),
        "label_only": config.label_only,
        **first_last(history, "loss", "loss"),
        **first_last(history, "mean_token_accuracy"),
        "loss_curve": curve(history, "loss"),
    }
    log.info("sft: %s", metrics)
    return metrics


def run(params: dict[str, Any]) -> dict[str, Any]:
    return train_sft(SFTStageConfig.from_params(params))


def main(argv: Sequence[str] | None = None) -> int:
    return step_main(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
