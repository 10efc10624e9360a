"""Load and save the causal LMs relmodel trains and scores, and check their grade tokens.

A model is named by a URI: a local directory, an fsspec URI (`file://...`, `s3://...`: remote
directories are copied to a local cache first, because transformers reads local files), or a
hub id (real clusters only: the local demo never downloads). A GGUF file is loaded with
transformers' `gguf_file=` and dequantised to an ordinary HF model.

Scoring reads the first-token logits of the four grade tokens, so the tokenizer must encode each
grade "1".."4" as ONE token that appends cleanly after the prompt. `grade_token_ids` checks
exactly that and fails early with a message that says which grade breaks and how.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from relmodel import storage
from relmodel.errors import RelmodelError, TokenizerError
from relmodel.format import build_prompt
from relmodel.labels import GRADE_TOKENS

MODEL_DIR = "model"
# A realistic prompt for the grade-token check (the check is about the prompt's last tokens).
SAMPLE_PROMPT = build_prompt("red running shoes for men", "Men's red mesh running shoe", {"color": "red"})
Precision = Literal["fp32", "bf16", "fp16"]  # TrainingSpec.precision


# --- where a model lives ------------------------------------------------------------------------


def is_hub_id(uri: str) -> bool:
    """True for `org/name`-style ids that are neither an existing path nor a URI."""
    return "://" not in uri and not os.path.exists(uri) and not uri.startswith(("/", ".", "~"))


def local_dir(uri: str) -> str:
    """A local directory holding the files of `uri` (remote fsspec directories are cached once)."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    if "://" not in uri:
        return os.path.expanduser(uri)
    fs, path = storage.filesystem(uri)
    cache = Path(tempfile.gettempdir()) / "relmodel-models" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if not (cache / "config.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        fs.get(path.rstrip("/") + "/", str(cache), recursive=True)
    return str(cache)


def _source(uri: str) -> str:
    """What to hand to `from_pretrained`: a local directory, or the hub id unchanged."""
    if is_hub_id(uri):
        return uri
    path = local_dir(uri)
    if not os.path.isdir(path):
        raise RelmodelError(f"{uri}: no such model directory")
    return path


# --- devices and precision ----------------------------------------------------------------------


def pick_device(device: str | None = None) -> torch.device:
    """The requested device, else CUDA when present, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def torch_dtype(precision: Precision, device: torch.device | None = None) -> torch.dtype:
    """Weights dtype for inference: bf16/fp16 only where a GPU runs them; CPU stays fp32."""
    on_gpu = (device or pick_device()).type == "cuda"
    if precision == "bf16" and on_gpu:
        return torch.bfloat16
    if precision == "fp16" and on_gpu:
        return torch.float16
    return torch.float32


def precision_flags(precision: Precision) -> dict[str, bool]:
    """TrainingArguments mixed-precision flags. TRL defaults bf16=True, so fp32 must say False."""
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


# --- loading and saving -------------------------------------------------------------------------


def load_tokenizer(uri: str, *, revision: str | None = None, gguf_file: str | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer of `uri`, with a pad token (falls back to eos) for batched scoring/generation."""
    kwargs: dict[str, Any] = {"revision": revision} if revision else {}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(_source(uri), **kwargs)
    except (OSError, ValueError) as exc:
        raise RelmodelError(f"{uri}: cannot load tokenizer: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    uri: str,
    *,
    revision: str | None = None,
    gguf_file: str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> PreTrainedModel:
    """A causal LM from `uri`; GGUF weights are dequantised and their quantization config dropped."""
    kwargs: dict[str, Any] = {"revision": revision} if revision else {}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    if dtype is not None:
        kwargs["dtype"] = dtype
    hf_logging.disable_progress_bar()  # a per-load bar is noise in step logs and in `relmodel run`
    try:
        model = AutoModelForCausalLM.from_pretrained(_source(uri), **kwargs)
    except (OSError, ValueError) as exc:
        raise RelmodelError(f"{uri}: cannot load model: {exc}") from exc
    if gguf_file:
        _drop_quantizer(model)
    if device is not None:
        model.to(device)  # type: ignore[arg-type]  # transformers' decorated .to() confuses mypy
    return model


def _drop_quantizer(model: Any) -> None:
    """A dequantised GGUF model is plain fp32, but transformers still marks it quantized (config and
    `hf_quantizer`), and `save_pretrained` refuses to write it; clear both marks."""
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if getattr(model, "is_quantized", False) and "is_quantized" in vars(model):
        model.is_quantized = False


def load_model_and_tokenizer(
    uri: str, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    return load_model(uri, device=device, dtype=dtype), load_tokenizer(uri)


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, uri: str) -> None:
    """Save model + tokenizer as a plain HF directory at `uri` (local path or fsspec URI)."""
    if "://" not in uri or uri.startswith("file://"):
        target = local_dir(uri)
        os.makedirs(target, exist_ok=True)
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
        return
    fs, path = storage.filesystem(uri)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        fs.put(tmp.rstrip("/") + "/", path, recursive=True)


# --- prompts and grade tokens ---------------------------------------------------------------------


def render_prompt(tokenizer: PreTrainedTokenizerBase, prompt_text: str, chat_template: bool) -> str:
    """The exact text the model reads: the prompt as is, or wrapped as a user turn + generation prompt."""
    if not chat_template:
        return prompt_text
    if not getattr(tokenizer, "chat_template", None):
        raise TokenizerError("chat_template is on but this tokenizer has no chat template")
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt_text}], tokenize=False, add_generation_prompt=True
    )
    return str(rendered)


def grade_token_ids(tokenizer: PreTrainedTokenizerBase, chat_template: bool = False) -> list[int]:
    """Token ids of grades "1".."4" (grade order), checked to be single tokens after a prompt.

    For each grade g the check is tokenize(prompt + g) == tokenize(prompt) + [id]: that is what
    scoring assumes when it reads the logits at the prompt's last position.
    """
    prompt = render_prompt(tokenizer, SAMPLE_PROMPT, chat_template)
    base = list(tokenizer(prompt)["input_ids"])
    ids: list[int] = []
    for grade in GRADE_TOKENS:
        alone = list(tokenizer(grade, add_special_tokens=False)["input_ids"])
        if len(alone) != 1:
            pieces = tokenizer.convert_ids_to_tokens(alone)
            raise TokenizerError(
                f"grade {grade!r} is {len(alone)} tokens for this tokenizer: {pieces}; scoring needs each grade "
                "1-4 to be exactly one token (use a tokenizer with single-digit tokens)"
            )
        full = list(tokenizer(prompt + grade)["input_ids"])
        if full != [*base, alone[0]]:
            tail = tokenizer.convert_ids_to_tokens(full[max(0, len(base) - 2) :])
            raise TokenizerError(
                f"grade {grade!r} does not append as one token after the prompt: the prompt's last tokens + grade "
                f"encode as {tail}; the grade merges with the prompt's end (make the prompt end on a token boundary)"
            )
        ids.append(alone[0])
    if len(set(ids)) != len(ids):
        raise TokenizerError(f"the four grades map to repeated token ids {ids}")
    return ids
