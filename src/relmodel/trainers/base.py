"""The `base` step: the model every training stage starts from, saved as an HF directory.

`tiny` builds one on the spot: a byte-level BPE tokenizer trained on the run's own text (so
prompts and rationales tokenize compactly), with every digit a token of its own (so grades
"1".."4" are single tokens and never merge with prices), and a randomly initialised Llama.
`path`, `hub` and `gguf` import an existing model (GGUF is dequantised). Either way the grade
tokens are checked here, so a tokenizer scoring cannot use fails at the first step, not the last.

    python -m relmodel.trainers.base --config params.json
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from relmodel import storage
from relmodel.format import INSTRUCTION, PROMPT_SUFFIX, REASON_CLOSE, REASON_OPEN, STEP_NAMES, build_prompt
from relmodel.labels import GRADES
from relmodel.modeling import MODEL_DIR, grade_token_ids, load_model, load_tokenizer, save_model
from relmodel.spec import BaseModelSpec, TinyModelSpec
from relmodel.steps import step_main

log = logging.getLogger(__name__)

EOS, PAD, USER, ASSISTANT = "<|endoftext|>", "<|pad|>", "<|user|>", "<|assistant|>"
# A minimal chat template, so that `chatTemplate: true` can be exercised on the tiny model too.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def format_corpus() -> list[str]:
    """Text of the output format itself: instruction, step names, tags, grade words and digits."""
    lines = [INSTRUCTION, PROMPT_SUFFIX, REASON_OPEN, REASON_CLOSE, "0123456789"]
    lines += [f"{i}. {name}: " for i, name in enumerate(STEP_NAMES, 1)]
    lines += [f"{g.token}\n{REASON_OPEN}\n5. Verdict: {g.label}, grade {g.token}.\n{REASON_CLOSE}" for g in GRADES]
    return lines


def corpus_from_data(data_uri: str) -> list[str]:
    """Prompts of train/eval pairs and the atomic rules (the words rationales are made of)."""
    texts = format_corpus()
    for name in ("train.jsonl", "eval.jsonl", "rules.jsonl"):
        uri = storage.join(data_uri, name)
        if not storage.exists(uri):
            continue
        for line in storage.read_text(uri).splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if "text" in row:  # a rule
                texts.append(str(row["text"]))
            elif "query" in row and "title" in row:
                texts.append(build_prompt(row["query"], row["title"], row.get("attributes") or {}))
                texts.append(str(row.get("description", "")))
    return texts


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE with digits split individually: grades are single tokens by construction."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD, USER, ASSISTANT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=PAD)
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_tiny_model(tokenizer: PreTrainedTokenizerFast, spec: TinyModelSpec) -> LlamaForCausalLM:
    """A randomly initialised Llama sized by `spec` (seeded: the same spec gives the same weights)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=4 * spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def build_tiny(texts: Sequence[str], spec: TinyModelSpec, output_uri: str) -> dict[str, Any]:
    """Train the tokenizer, build the model, check the grade tokens and save both to `output_uri`."""
    tokenizer = train_tokenizer(texts, spec.vocab_size)
    grade_ids = grade_token_ids(tokenizer)
    model = build_tiny_model(tokenizer, spec)
    save_model(model, tokenizer, output_uri)
    return {"vocab_size": len(tokenizer), "parameters": model.num_parameters(), "grade_token_ids": grade_ids}


def run(params: dict[str, Any]) -> dict[str, Any]:
    spec = BaseModelSpec.model_validate(params["base_model"])
    target = storage.join(params["output"], MODEL_DIR)
    if spec.tiny is not None:
        texts = corpus_from_data(params["data"])
        metrics = build_tiny(texts, spec.tiny, target)
        prompt_tokens = _mean_tokens(load_tokenizer(target), texts)
        log.info("tiny model: %s, %.1f tokens per corpus line", metrics, prompt_tokens)
        return {**metrics, "source": "tiny", "mean_tokens_per_text": round(prompt_tokens, 1)}

    if spec.gguf is not None:
        uri, gguf_file, source = spec.gguf.path, spec.gguf.file, "gguf"
    else:
        uri, gguf_file = spec.path or spec.hub or "", None
        source = "path" if spec.path else "hub"
    tokenizer = load_tokenizer(uri, revision=spec.revision, gguf_file=gguf_file)
    grade_ids = grade_token_ids(tokenizer, spec.chat_template)  # fail before loading the weights
    model = load_model(uri, revision=spec.revision, gguf_file=gguf_file)
    save_model(model, tokenizer, target)
    return {"source": source, "vocab_size": len(tokenizer), "parameters": model.num_parameters(),
            "grade_token_ids": grade_ids}


def _mean_tokens(tokenizer: Any, texts: Sequence[str]) -> float:
    sample = [t for t in texts if t][:200]
    return sum(len(tokenizer(t)["input_ids"]) for t in sample) / max(1, len(sample))


def main(argv: Sequence[str] | None = None) -> int:
    return step_main(run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
