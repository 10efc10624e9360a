"""The `dpo` step: TRL DPOTrainer on the pass@N preference pairs, against the frozen SFT model.

The input model is both the policy's starting point and the reference (TRL builds the frozen
reference from the same checkpoint when none is passed; with LoRA it disables the adapter).

    python -m relmodel.trainers.dpo --config params.json
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from relmodel.data.jsonl import read_jsonl
from relmodel.data.schemas import PreferencePair
from relmodel.errors import DataError
from relmodel.modeling import render_prompt
from relmodel.spec import TrainingSpec
from relmodel.steps import step_main
from relmodel.trainers.common import (
    curve,
    first_last,
    load_policy,
    lora_config,
    save_policy,
    scratch_dir,
    seed_everything,
    training_spec,
    trl_kwargs,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DPOStageConfig:
    model: str
    train: str  # pairs.jsonl from the samples step
    output: str
    training: TrainingSpec
    beta: float = 0.1
    chat_template: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> DPOStageConfig:
        return cls(model=params["model"], train=params["train"], output=params["output"],
                   training=training_spec(params), beta=float(params.get("beta", 0.1)),
                   chat_template=bool(params.get("chat_template", False)))


def train_dpo(config: DPOStageConfig) -> dict[str, Any]:
    pairs = read_jsonl(config.train, PreferencePair)
    if not pairs:
        raise DataError(f"{config.train}: no preference pairs (every sampled prompt was all-correct?)")
    seed_everything(config.training.seed)
    model, tokenizer = load_policy(config.model, config.training)
    dataset = Dataset.from_list([
        {"prompt": render_prompt(tokenizer, p.prompt, config.chat_template), "chosen": p.chosen,
         "rejected": p.rejected} for p in pairs
    ])
    with scratch_dir() as scratch:
        args = DPOConfig(**trl_kwargs(config.training, scratch), max_length=config.training.max_length,
                         beta=config.beta)
        trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=lora_config(config.training.lora))
        result = trainer.train()
    history = trainer.state.log_history
    save_policy(trainer.model, tokenizer, config.output)
    metrics = {
        "pairs": len(pairs),
        "pairs_by_case": dict(Counter(p.case for p in pairs)),
        "steps": trainer.state.global_step,
        "beta": config.beta,
        "train_loss": round(float(result.training_loss), 5),
        **first_last(history, "loss", "loss"),
        **first_last(history, "rewards/margins"),
        **first_last(history, "rewards/accuracies"),
        "loss_curve": curve(history, "loss"),
    }
    log.info("dpo: %s", metrics)
    return metrics


def run(params: dict[str, Any]) -> dict[str, Any]:
    return train_dpo(DPOStageConfig.from_params(params))


def main(argv: Sequence[str] | None = None) -> int:
    return step_main(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
