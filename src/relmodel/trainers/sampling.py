"""Sampling from the policy (pass@N, GRPO difficulty rollouts) and the paper's DPO pair rule.

Generation runs on vLLM's offline engine when asked (`use_vllm`) and vLLM + CUDA are present,
else on transformers `generate` (batched, left-padded). A sample is "correct" when its leading
grade equals gold: under post-CoT the first token is the answer.

DPO pairs per prompt (TaoSR1 §1.6):
  * some samples correct  -> chosen = a correct sample, rejected = a wrong one ("self_correction")
  * no sample correct      -> chosen = the teacher's rationale, rejected = a wrong one ("oracle")
  * all samples correct    -> no pair (nothing to prefer against)
Among wrong samples the one whose grade is farthest from gold is rejected first; a sample with
no grade at all counts as the farthest (it is not even an answer).
"""

from __future__ import annotations

import functools
import logging
import random
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import comb
from typing import Any, cast

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from relmodel.data.schemas import CoTRecord, PreferencePair, SampleGroup
from relmodel.format import build_prompt, leading_grade
from relmodel.trainers.common import has_vllm_gpu, load_policy, prompt_of

log = logging.getLogger(__name__)

UNPARSABLE_DISTANCE = 4  # farther than any real grade (max |a - b| is 3)
GENERATE_BATCH = 64  # sequences per transformers generate call (prompts x samples)


@dataclass(frozen=True)
class GenerationSettings:
    """How completions are sampled (the DPO spec's sampling fields, or the GRPO rollout fields)."""

    num_samples: int
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 96
    seed: int = 0
    use_vllm: bool = False
    batch_size: int = GENERATE_BATCH

    @classmethod
    def for_samples(cls, params: Mapping[str, Any]) -> GenerationSettings:
        return cls(num_samples=int(params["samples"]), temperature=float(params["temperature"]),
                   top_p=float(params["top_p"]), max_new_tokens=int(params["max_new_tokens"]),
                   seed=int(params.get("seed", 0)), use_vllm=bool(params.get("use_vllm", False)))


def generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
             settings: GenerationSettings, model_path: str | None = None) -> list[list[str]]:
    """`settings.num_samples` sampled completions per rendered prompt (special tokens stripped)."""
    if settings.use_vllm and model_path and has_vllm_gpu():
        return _generate_vllm(model_path, prompts, settings)
    if settings.use_vllm:
        log.info("vLLM generation requested but vLLM/CUDA (or a model path) is missing: using transformers")
    torch.manual_seed(settings.seed)
    n = settings.num_samples
    per_call = max(1, settings.batch_size // n)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    out: list[list[str]] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(prompts), per_call):
            chunk = list(prompts[start : start + per_call])
            inputs = tokenizer(chunk, return_tensors="pt", padding=True).to(model.device)
            with torch.no_grad():
                generated = cast(Any, model).generate(
                    **inputs, do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=0,
                    max_new_tokens=settings.max_new_tokens, num_return_sequences=n,
                    pad_token_id=tokenizer.pad_token_id,
                )
            texts = tokenizer.batch_decode(generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            out.extend(texts[i : i + n] for i in range(0, len(texts), n))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


@functools.lru_cache(maxsize=2)
def _vllm_engine(model_path: str, seed: int) -> Any:
    from vllm import LLM

    return LLM(model=model_path, seed=seed, enable_prefix_caching=True)


def _generate_vllm(model_path: str, prompts: Sequence[str], settings: GenerationSettings) -> list[list[str]]:
    from vllm import SamplingParams

    params = SamplingParams(n=settings.num_samples, temperature=settings.temperature, top_p=settings.top_p,
                            max_tokens=settings.max_new_tokens, seed=settings.seed)
    outputs = _vllm_engine(model_path, settings.seed).generate(list(prompts), params)
    return [[choice.text for choice in output.outputs] for output in outputs]


@functools.lru_cache(maxsize=2)
def cached_policy(model_uri: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """One model load per worker process, however many shards it processes."""
    return load_policy(model_uri)


def sample_groups(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, records: Sequence[CoTRecord],
                  settings: GenerationSettings, chat_template: bool, model_path: str | None = None,
                  ) -> list[SampleGroup]:
    prompts = [prompt_of(r.pair, tokenizer, chat_template) for r in records]
    completions = generate(model, tokenizer, prompts, settings, model_path)
    return [SampleGroup(pair=r.pair, completions=c, grades=[leading_grade(t) for t in c])
            for r, c in zip(records, completions, strict=True)]


def sample_shard(rows: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """Celery shard function (tasks.shards.run_sharded): CoTRecord rows -> SampleGroup rows."""
    records = [CoTRecord.model_validate(row) for row in rows]
    if not records:
        return {"rows": [], "counts": {"prompts": 0}}
    model, tokenizer = cached_policy(params["model"])
    base = GenerationSettings.for_samples(params)
    # A seed per shard, derived from its content: re-running a shard reproduces its samples.
    seed = base.seed + zlib.crc32(records[0].pair.pair_id.encode())
    settings = GenerationSettings(**{**base.__dict__, "seed": seed})
    groups = sample_groups(model, tokenizer, records, settings, bool(params.get("chat_template", False)),
                           model_path=str(getattr(model.config, "_name_or_path", "")) or None)
    return {"rows": [g.model_dump(mode="json") for g in groups], "counts": {"prompts": len(groups)}}


# --- the pair rule and pass@k ----------------------------------------------------------------------


def _distance(grade: int | None, gold: int) -> int:
    return UNPARSABLE_DISTANCE if grade is None else abs(int(grade) - gold)


def build_preference_pairs(groups: Sequence[SampleGroup], teacher_completions: Mapping[str, str],
                           pairs_per_prompt: int, rng: random.Random,
                           ) -> tuple[list[PreferencePair], dict[str, int]]:
    """The paper's pair rule over sampled groups; returns the pairs and counts per case.

    `teacher_completions` maps pair_id -> the teacher's post-CoT text (the oracle's chosen); a
    teacher text whose leading grade is not gold is not used (it would teach the wrong answer).
    """
    pairs: list[PreferencePair] = []
    counts: Counter[str] = Counter()
    for group in groups:
        gold = int(group.pair.grade)
        correct = list(dict.fromkeys(c for c, ok in zip(group.completions, group.correct, strict=True) if ok))
        wrong_scored = [(c, _distance(g, gold)) for c, g, ok in
                        zip(group.completions, group.grades, group.correct, strict=True) if not ok]
        wrong_scored = list(dict(wrong_scored).items())  # distinct texts
        rng.shuffle(wrong_scored)  # random among equally far ones...
        wrong = [c for c, _ in sorted(wrong_scored, key=lambda cd: -cd[1])]  # ...farthest first (stable sort)
        if not wrong:
            counts["all_correct"] += 1
            continue
        if correct:
            case, chosen = "self_correction", correct
            rng.shuffle(chosen)
        else:
            teacher = teacher_completions.get(group.pair.pair_id)
            if teacher is None or leading_grade(teacher) != group.pair.grade:
                counts["oracle_unavailable"] += 1
                continue
            case, chosen = "oracle", [teacher]
        prompt = build_prompt(group.pair.query, group.pair.title, group.pair.attributes)
        for i in range(min(pairs_per_prompt, len(wrong))):
            pairs.append(PreferencePair(pair_id=group.pair.pair_id, prompt=prompt, chosen=chosen[i % len(chosen)],
                                        rejected=wrong[i], case=case))
            counts[f"pairs_{case}"] += 1
        counts[f"prompts_{case}"] += 1
    return pairs, dict(counts)


def pass_at_k(groups: Sequence[SampleGroup], k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021) averaged over prompts: P(some of k draws is correct)."""
    values = []
    for group in groups:
        n, c = len(group.grades), sum(group.correct)
        if n < k:
            continue
        values.append(1.0 - comb(n - c, k) / comb(n, k))
    return sum(values) / len(values) if values else 0.0
