"""Prefill-only grade scoring: p(grade | query, item) from the first generated position.

The model writes the grade first (post-CoT), so one forward pass over the prompt is enough:
p1..p4 = softmax over the four grade-token logits at the prompt's last position; no token is
generated. Batches are left-padded (so the last position is the prompt's last token for every
row) and sorted by length; serving (relmodel.serving) instead sends one query's items together,
so that the engine's prefix cache shares the query.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from relmodel import storage
from relmodel.cumpt import DEFAULT_BETA, check_beta, cumpt
from relmodel.data.jsonl import read_jsonl
from relmodel.data.schemas import Pair
from relmodel.format import build_prompt
from relmodel.modeling import grade_token_ids, load_model, load_tokenizer, pick_device, render_prompt

DEFAULT_BATCH_SIZE = 64


class GradeScorer:
    """Scores (query, item) pairs with a causal LM's first-token grade distribution."""

    def __init__(self, model_uri: str, chat_template: bool = False, device: str | None = None) -> None:
        dev = pick_device(device)
        self._setup(load_model(model_uri, device=dev), load_tokenizer(model_uri), chat_template, dev)

    @classmethod
    def from_model(cls, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                   chat_template: bool = False) -> GradeScorer:
        """Wrap a model already in memory (trainers score their own policy without reloading it)."""
        scorer = cls.__new__(cls)
        scorer._setup(model, tokenizer, chat_template, model.device)
        return scorer

    def _setup(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, chat_template: bool,
               device: torch.device) -> None:
        self.model, self.tokenizer, self.chat_template, self.device = model, tokenizer, chat_template, device
        self.grade_ids = grade_token_ids(tokenizer, chat_template)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    def prompt_for(self, pair: Pair) -> str:
        return render_prompt(self.tokenizer, build_prompt(pair.query, pair.title, pair.attributes), self.chat_template)

    @torch.no_grad()
    def score_prompts(self, prompts: Sequence[str]) -> np.ndarray:
        """(n, 4) grade probabilities p1..p4 for rendered prompts, in ONE forward pass."""
        if not prompts:
            return np.zeros((0, 4))
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            batch = self.tokenizer(list(prompts), return_tensors="pt", padding=True).to(self.device)
        finally:
            self.tokenizer.padding_side = side
        mask = batch["attention_mask"]
        # Positions count real tokens only, so a left-padded row sees the same positions it would alone.
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        was_training = self.model.training
        self.model.eval()
        # Only the last position's logits: the LM head over every position would cost more than it reads.
        logits = self.model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=positions,
                            logits_to_keep=1).logits
        self.model.train(was_training)
        grade_logits = logits[:, -1, self.grade_ids].float()
        return torch.softmax(grade_logits, dim=-1).cpu().numpy().astype(np.float64)

    def score_pairs(self, pairs: Sequence[Pair], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """(n, 4) p1..p4 per pair, input order. Offline there is no prefix cache to share a query
        with, so batches cross queries: prompts sorted by length (little padding), batch_size at a time."""
        prompts = [self.prompt_for(pair) for pair in pairs]
        lengths = [len(ids) for ids in self.tokenizer(prompts)["input_ids"]] if prompts else []
        order = sorted(range(len(prompts)), key=lengths.__getitem__)
        probs = np.zeros((len(pairs), 4))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            probs[chunk] = self.score_prompts([prompts[i] for i in chunk])
        return probs


def score_file(model: str | GradeScorer, input_uri: str, output_uri: str, beta: float = DEFAULT_BETA, *,
               chat_template: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
               device: str | None = None) -> dict[str, Any]:
    """Score every pair of a JSONL file into `output_uri`: ids, probs, CumPT grade and tier per line.

    All rows are validated before anything is scored (a bad row is a DataError naming its line)
    and the output appears atomically, so a failure never leaves a partial file.
    """
    beta = check_beta(beta)
    pairs = read_jsonl(input_uri, Pair)
    scorer = model if isinstance(model, GradeScorer) else GradeScorer(model, chat_template, device)
    probs = scorer.score_pairs(pairs, batch_size=batch_size)
    tiers: dict[str, int] = {}
    with storage.atomic_write(output_uri) as handle:
        for pair, row in zip(pairs, probs, strict=True):
            grade, tier = cumpt(row.tolist(), beta)
            tiers[tier.value] = tiers.get(tier.value, 0) + 1
            record = {
                "pair_id": pair.pair_id, "query_id": pair.query_id, "query": pair.query, "item_id": pair.item_id,
                "probs": {str(g): round(float(p), 6) for g, p in zip(range(1, 5), row, strict=True)},
                "grade": int(grade), "tier": tier.value,
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return {"pairs": len(pairs), "beta": beta, "tiers": tiers}
