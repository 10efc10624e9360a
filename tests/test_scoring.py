"""GradeScorer: probabilities are a distribution, equal a manual forward pass, and batching changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from relmodel.data.jsonl import write_jsonl
from relmodel.data.schemas import GradedPair, Pair
from relmodel.errors import DataError
from relmodel.scoring import GradeScorer, score_file


@pytest.fixture(scope="module")
def scorer(tiny_model_dir: Path) -> GradeScorer:
    return GradeScorer(str(tiny_model_dir), device="cpu")


def test_probabilities_sum_to_one_and_match_a_manual_forward(scorer: GradeScorer, pairs: list[GradedPair]) -> None:
    probs = scorer.score_pairs(pairs[:6])
    assert probs.shape == (6, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    prompt = scorer.prompt_for(pairs[0])
    ids = scorer.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = scorer.model(input_ids=ids).logits[0, -1, scorer.grade_ids]
    np.testing.assert_allclose(probs[0], torch.softmax(logits, -1).numpy(), atol=1e-5)


def test_batched_equals_one_by_one(scorer: GradeScorer, pairs: list[GradedPair]) -> None:
    # Items of one query with titles of different lengths: left padding must not change any row.
    mixed = [*pairs[:8], pairs[0].model_copy(update={"item_id": "long", "title": "red shoe " * 12})]
    batched = scorer.score_pairs(mixed, batch_size=64)
    single = np.vstack([scorer.score_pairs([p], batch_size=1) for p in mixed])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert not np.allclose(batched[0], batched[-1])  # the long title really is a different input


def test_batches_cross_queries_by_length_and_keep_input_order(
        scorer: GradeScorer, pairs: list[GradedPair], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = scorer.score_prompts
    monkeypatch.setattr(scorer, "score_prompts", lambda prompts: calls.append(len(prompts)) or original(prompts))
    subset = pairs[:24]
    probs = scorer.score_pairs(subset, batch_size=10)
    assert calls == [10, 10, 4]  # not one call per query: 24 pairs of many queries
    alone = np.vstack([original([scorer.prompt_for(p)]) for p in subset])  # each pair scored on its own
    np.testing.assert_allclose(probs, alone, atol=1e-5)


def test_score_file_writes_probs_grade_and_tier(scorer: GradeScorer, pairs: list[GradedPair], tmp_path: Path) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(str(source), [Pair(**p.model_dump(exclude={"grade"})) for p in pairs[:5]])
    summary = score_file(scorer, str(source), str(target), beta=0.5)
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert summary["pairs"] == len(rows) == 5
    row = rows[0]
    assert set(row["probs"]) == {"1", "2", "3", "4"} and abs(sum(row["probs"].values()) - 1) < 1e-4
    assert row["grade"] in (1, 2, 3, 4) and row["tier"] in ("Good", "Mid", "Bad")
    assert row["pair_id"] == pairs[0].pair_id


def test_score_file_bad_row_writes_nothing(scorer: GradeScorer, tmp_path: Path) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text('{"query": "q", "item_id": "i", "title": "t"}\n{"query": "q", "title": "no id"}\n')
    with pytest.raises(DataError, match=r"in.jsonl:2: item_id: required field missing"):
        score_file(scorer, str(source), str(target))
    assert not target.exists()
