"""The CPU engine's model runtime: one batched prefill for scoring, HF generate for decoding.

Scoring (max_tokens=1) is one right-padded forward over all prompts of a request: right padding
keeps every prompt's positions exactly those of an unpadded forward, so a prompt scores the
same alone or in a batch. Logprobs are "raw" (log-softmax of the model's logits before any
sampling constraint), which is vLLM's default `--logprobs-mode raw_logprobs`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


class EngineInputError(ValueError):
    """A request the engine cannot run (vLLM answers these with HTTP 400)."""


@dataclass(frozen=True)
class Sampling:
    """The sampling parameters the CPU engine honours (a subset of vllm.SamplingParams)."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    min_tokens: int = 0
    allowed_token_ids: tuple[int, ...] | None = None
    logprobs: int | None = None
    logprob_token_ids: tuple[int, ...] | None = None
    prompt_logprobs: int | None = None


@dataclass
class StepLogprobs:
    """Logprobs at one generated position: the chosen token's and the reported alternatives."""

    token_id: int
    logprob: float
    top: dict[int, float]


@dataclass
class Generation:
    prompt_ids: list[int]
    token_ids: list[int] = field(default_factory=list)
    steps: list[StepLogprobs] = field(default_factory=list)
    finish_reason: str = "length"
    stop_reason: int | str | None = None
    prompt_logprobs: list[dict[int, tuple[float, int]] | None] | None = None


class EngineModel:
    """A causal LM and its tokenizer, loaded once; forwards are serialised by a lock."""

    def __init__(self, model_dir: str | Path, *, max_model_len: int | None = None, dtype: str = "float32"):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.path = str(model_dir)
        self.tokenizer: Any = AutoTokenizer.from_pretrained(self.path)
        torch_dtype = getattr(torch, dtype)
        self.model: Any = AutoModelForCausalLM.from_pretrained(self.path, dtype=torch_dtype).eval()
        config_len = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.max_model_len = min(max_model_len or config_len, config_len)
        self.vocab_size = int(self.model.config.vocab_size)
        pad = self.tokenizer.pad_token_id
        self.pad_id: int = int(pad if pad is not None else self.tokenizer.eos_token_id or 0)
        self.eos_id: int | None = self.tokenizer.eos_token_id
        # Models that post-process logits (softcapping, scaling) go through the full forward.
        cfg = self.model.config
        self._plain_head = not getattr(cfg, "final_logit_softcapping", None) and not getattr(cfg, "logit_scale", None)
        self._lock = threading.Lock()

    # --- tokens ----------------------------------------------------------------------------

    def encode(self, prompt: str, add_special_tokens: bool = True) -> list[int]:
        return list(self.tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"])

    def token_text(self, token_id: int) -> str:
        return str(self.tokenizer.decode([token_id]))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens))

    # --- validation ------------------------------------------------------------------------

    def check(self, prompts: Sequence[Sequence[int]], sampling: Sampling) -> None:
        """Refuse what vLLM refuses, with vLLM-like messages, before any compute."""
        for ids in prompts:
            if not ids:
                raise EngineInputError("The prompt cannot be empty.")
            if max(ids) >= self.vocab_size:
                raise EngineInputError(f"Token id {max(ids)} is out of vocabulary (size {self.vocab_size}).")
            total = len(ids) + sampling.max_tokens
            if total > self.max_model_len:
                raise EngineInputError(
                    f"This model's maximum context length is {self.max_model_len} tokens. However, you "
                    f"requested {total} tokens ({len(ids)} in the messages, {sampling.max_tokens} in the "
                    "completion). Please reduce the length of the messages or completion."
                )
        for name in ("allowed_token_ids", "logprob_token_ids", "stop_token_ids"):
            ids = getattr(sampling, name) or ()
            if any(not 0 <= i < self.vocab_size for i in ids):
                raise EngineInputError(f"{name} contains out-of-vocab token ids (vocab size {self.vocab_size}).")
        if sampling.allowed_token_ids is not None and not sampling.allowed_token_ids:
            raise EngineInputError("allowed_token_ids must not be empty.")

    # --- compute ---------------------------------------------------------------------------

    def run(self, prompts: Sequence[Sequence[int]], sampling: Sampling) -> list[Generation]:
        """Prefill all prompts together; decode further only when max_tokens > 1."""
        self.check(prompts, sampling)
        with self._lock, torch.inference_mode():
            logits, prompt_lps = self._prefill(prompts, sampling.prompt_logprobs)
            gens = [Generation(prompt_ids=list(p), prompt_logprobs=prompt_lps[i]) for i, p in enumerate(prompts)]
            if sampling.max_tokens <= 0:
                return gens
            if sampling.max_tokens == 1:
                first = self._choose(logits, sampling)
                for gen, row, token in zip(gens, logits, first, strict=True):
                    self._append(gen, row, int(token), sampling)
                return gens
            self._decode(prompts, gens, sampling)
            return gens

    def _prefill(
        self, prompts: Sequence[Sequence[int]], prompt_logprobs: int | None
    ) -> tuple[torch.Tensor, list[list[dict[int, tuple[float, int]] | None] | None]]:
        lengths = torch.tensor([len(p) for p in prompts])
        width = int(lengths.max())
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, : len(p)] = torch.tensor(list(p))
            mask[i, : len(p)] = 1
        rows = torch.arange(len(prompts))
        if prompt_logprobs is None and self._plain_head:
            # Only each prompt's last position is needed: run the LM head on those rows alone.
            hidden = self.model.base_model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
            last = self.model.get_output_embeddings()(hidden[rows, lengths - 1]).float()
            return last, [None] * len(prompts)
        full = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        last = full[rows, lengths - 1].float()
        if prompt_logprobs is None:
            return last, [None] * len(prompts)
        return last, [self._prompt_logprobs(full[i, : len(p)].float(), p, prompt_logprobs)
                      for i, p in enumerate(prompts)]

    def _prompt_logprobs(
        self, logits: torch.Tensor, ids: Sequence[int], k: int
    ) -> list[dict[int, tuple[float, int]] | None]:
        lps = torch.log_softmax(logits, dim=-1)
        out: list[dict[int, tuple[float, int]] | None] = [None]
        for pos in range(1, len(ids)):
            row = lps[pos - 1]
            token = int(ids[pos])
            rank = int((row > row[token]).sum()) + 1
            entry = {token: (float(row[token]), rank)}
            if k:
                top = torch.topk(row, min(k if k > 0 else row.numel(), row.numel()))
                for r, (v, t) in enumerate(zip(top.values.tolist(), top.indices.tolist(), strict=True), 1):
                    entry.setdefault(int(t), (float(v), r))
            out.append(entry)
        return out

    def _constrain(self, logits: torch.Tensor, sampling: Sampling, step: int = 0) -> torch.Tensor:
        if sampling.allowed_token_ids is not None:
            masked = torch.full_like(logits, float("-inf"))
            allowed = list(sampling.allowed_token_ids)
            masked[..., allowed] = logits[..., allowed]
            logits = masked
        if step < sampling.min_tokens and not sampling.ignore_eos:
            for stop_id in self._stop_ids(sampling):
                logits[..., stop_id] = float("-inf")
        return logits

    def _choose(self, logits: torch.Tensor, sampling: Sampling) -> torch.Tensor:
        logits = self._constrain(logits.clone(), sampling)
        if sampling.temperature <= 1e-5:
            return logits.argmax(dim=-1)
        generator = torch.Generator().manual_seed(sampling.seed) if sampling.seed is not None else None
        probs = torch.softmax(_top_k_top_p(logits / sampling.temperature, sampling.top_k, sampling.top_p), -1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    def _append(self, gen: Generation, raw_logits: torch.Tensor, token: int, sampling: Sampling) -> None:
        gen.token_ids.append(token)
        if sampling.logprobs is None:
            return
        lps = torch.log_softmax(raw_logits.float(), dim=-1)
        if sampling.logprob_token_ids:
            wanted = list(sampling.logprob_token_ids)
        else:
            k = lps.numel() if sampling.logprobs < 0 else min(sampling.logprobs, lps.numel())
            wanted = torch.topk(lps, k).indices.tolist() if k else []
        top = {token: float(lps[token])}
        top.update({int(t): float(lps[t]) for t in wanted})
        gen.steps.append(StepLogprobs(token_id=token, logprob=float(lps[token]), top=top))

    def _stop_ids(self, sampling: Sampling) -> list[int]:
        ids = list(sampling.stop_token_ids)
        if not sampling.ignore_eos and self.eos_id is not None:
            ids.append(int(self.eos_id))
        return ids

    def _decode(self, prompts: Sequence[Sequence[int]], gens: list[Generation], sampling: Sampling) -> None:
        """Decode with HF generate (left padding); raw per-step logits give vLLM-style logprobs."""
        from transformers import LogitsProcessor, LogitsProcessorList

        engine = self

        class _Constrain(LogitsProcessor):
            def __init__(self, start: int) -> None:
                self.start = start

            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
                return engine._constrain(scores, sampling, step=input_ids.shape[1] - self.start)

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(list(p))
            mask[i, width - len(p) :] = 1
        stop_ids = self._stop_ids(sampling)
        do_sample = sampling.temperature > 1e-5
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        out = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=sampling.max_tokens,
            do_sample=do_sample,
            temperature=sampling.temperature if do_sample else None,
            top_p=sampling.top_p if do_sample else None,
            top_k=(sampling.top_k or None) if do_sample else None,
            eos_token_id=stop_ids or None,
            pad_token_id=self.pad_id,
            logits_processor=LogitsProcessorList([_Constrain(width)]),
            return_dict_in_generate=True,
            output_logits=True,
        )
        generated = out.sequences[:, width:]
        for i, gen in enumerate(gens):
            for step in range(generated.shape[1]):
                token = int(generated[i, step])
                self._append(gen, out.logits[step][i], token, sampling)
                if token in stop_ids:
                    gen.finish_reason = "stop"
                    gen.stop_reason = token if token != self.eos_id else None
                    break


def _top_k_top_p(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    if top_k and top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = torch.softmax(sorted_logits, -1).cumsum(-1)
        drop = cum - torch.softmax(sorted_logits, -1) > top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits
