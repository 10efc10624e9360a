"""What the training stages share: TrainingSpec -> TRL config kwargs, LoRA, loading the policy,
saving a plain HF directory (LoRA merged), seeding, prompts, and reading TRL's logs.

Multi-GPU: a stage is one Python process per GPU. The trainer image runs
`accelerate launch --num_processes N -m relmodel.trainers.<stage> --config params.json` when
`training.num_processes > 1` (see `launch_command`), and plain `python -m ...` otherwise; TRL and
accelerate pick up the distributed state from the environment the launcher sets.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from relmodel import storage
from relmodel.data.schemas import Pair
from relmodel.format import build_prompt
from relmodel.modeling import (
    MODEL_DIR,
    load_model,
    load_tokenizer,
    pick_device,
    precision_flags,
    render_prompt,
    save_model,
    torch_dtype,
)
from relmodel.spec import LoRASpec, TrainingSpec

log = logging.getLogger(__name__)


def training_spec(params: dict[str, Any]) -> TrainingSpec:
    return TrainingSpec.model_validate(params.get("training") or {})


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def has_vllm_gpu() -> bool:
    """vLLM generation needs both the package and a CUDA device."""
    if not torch.cuda.is_available():
        return False
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


def launch_command(stage: str, config_uri: str, num_processes: int) -> list[str]:
    """The command the trainer image runs for a stage (accelerate only when it spreads over GPUs)."""
    entry = ["-m", f"relmodel.trainers.{stage}", "--config", config_uri]
    if num_processes > 1:
        return ["accelerate", "launch", "--num_processes", str(num_processes), *entry]
    return ["python", *entry]


def trl_kwargs(training: TrainingSpec, output_dir: str) -> dict[str, Any]:
    """TrainingArguments fields every TRL config of ours shares.

    Deviations from TRL defaults, on purpose: bf16 and gradient checkpointing follow the spec
    (TRL turns both on by default, which is wrong for fp32 CPU runs); logging every step (the
    stage metrics are read from the log); no checkpoints (the stage saves the final model).
    """
    return {
        "output_dir": output_dir,
        "num_train_epochs": training.epochs,
        "max_steps": training.max_steps,
        "learning_rate": training.learning_rate,
        "per_device_train_batch_size": training.batch_size,
        "gradient_accumulation_steps": training.gradient_accumulation_steps,
        "warmup_steps": min(training.warmup_ratio, 0.99),  # a float < 1 is a ratio of total steps
        "seed": training.seed,
        # transformers 5 renamed it; TRL's own default (gradient_checkpointing=True) must not win.
        "activation_checkpointing": training.gradient_checkpointing,
        **precision_flags(training.precision),
        "use_cpu": not torch.cuda.is_available(),
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def lora_config(lora: LoRASpec | None) -> Any:
    """A peft LoraConfig for causal LMs, or None for full fine-tuning (what the papers do)."""
    if lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora.target_modules, task_type="CAUSAL_LM")


def load_policy(uri: str, training: TrainingSpec | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model + tokenizer to train or sample from, in the spec's precision on the best device."""
    device = pick_device()
    dtype = torch_dtype(training.precision, device) if training else torch.float32
    return load_model(uri, device=device, dtype=dtype), load_tokenizer(uri)


def save_policy(model: Any, tokenizer: PreTrainedTokenizerBase, output: str) -> str:
    """Save `<output>/model` as a plain HF directory: a LoRA adapter is merged into the weights first."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.config.use_cache = True  # training turns the KV cache off; generation and serving want it
    target = storage.join(output, MODEL_DIR)
    save_model(model, tokenizer, target)
    return target


@contextmanager
def scratch_dir() -> Iterator[str]:
    """TRL's output_dir: we save nothing there (save_strategy="no"), so a temporary directory does."""
    path = tempfile.mkdtemp(prefix="relmodel-trl-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def prompt_of(pair: Pair, tokenizer: PreTrainedTokenizerBase, chat_template: bool) -> str:
    """The rendered prompt a pair is trained, sampled and scored with (one definition everywhere)."""
    return render_prompt(tokenizer, build_prompt(pair.query, pair.title, pair.attributes), chat_template)


def series(log_history: Sequence[dict[str, Any]], key: str) -> list[float]:
    """Every logged value of `key` in TRL's log history (one per logging step)."""
    return [float(entry[key]) for entry in log_history if key in entry]


def curve(log_history: Sequence[dict[str, Any]], key: str) -> list[list[float]]:
    """[[step, value], ...] of a logged metric, for the report's training-curve plots."""
    return [[float(entry.get("step", i)), round(float(entry[key]), 5)]
            for i, entry in enumerate(log_history) if key in entry]


def first_last(log_history: Sequence[dict[str, Any]], key: str, name: str | None = None) -> dict[str, float]:
    """`<name>_first`, `<name>_last` (and the mean of the first/last quarter, less noisy) of a logged metric."""
    values = series(log_history, key)
    if not values:
        return {}
    name = name or key.replace("/", "_")
    quarter = max(1, len(values) // 4)
    return {
        f"{name}_first": round(values[0], 5),
        f"{name}_last": round(values[-1], 5),
        f"{name}_first_quarter": round(float(np.mean(values[:quarter])), 5),
        f"{name}_last_quarter": round(float(np.mean(values[-quarter:])), 5),
    }
