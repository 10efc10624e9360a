"""The `samples` and `difficulty` step entry points on the tiny model (eager Celery shards)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relmodel.data.jsonl import read_jsonl, write_jsonl
from relmodel.data.schemas import GradedPair, PreferencePair, SampleGroup
from relmodel.modeling import load_tokenizer
from relmodel.tasks import difficulty as difficulty_step
from relmodel.tasks import sampling as sampling_step
from relmodel.trainers.difficulty import DifficultyRow
from tests.conftest import make_cot

pytestmark = pytest.mark.slow


def test_samples_step_writes_groups_pairs_and_pass_at_k(tmp_path: Path, tiny_model_dir: Path,
                                                         pairs: list[GradedPair]) -> None:
    write_jsonl(str(tmp_path / "cot.jsonl"), make_cot(pairs[:12]))
    params = {"output": str(tmp_path / "out"), "model": str(tiny_model_dir), "cot": str(tmp_path / "cot.jsonl"),
              "seed": 0, "chat_template": False, "samples": 3, "temperature": 1.0, "top_p": 1.0,
              "max_new_tokens": 12, "pairs_per_prompt": 1, "use_vllm": False, "shard_size": 5}
    metrics = sampling_step.run(params)
    groups = read_jsonl(str(tmp_path / "out" / "samples.jsonl"), SampleGroup)
    pairs_out = read_jsonl(str(tmp_path / "out" / "pairs.jsonl"), PreferencePair)
    assert [g.pair.pair_id for g in groups] == [p.pair_id for p in pairs[:12]]  # shards merged in order
    assert all(len(g.completions) == 3 for g in groups)
    assert metrics["pass@1"] <= metrics["pass@2"] <= metrics["pass@3"]
    assert metrics["pairs"] == len(pairs_out)
    # An untrained model rarely starts with the gold grade: mostly oracle pairs with the teacher as chosen.
    assert all(p.case in ("oracle", "self_correction") for p in pairs_out)
    assert sampling_step.run(params) == metrics  # shards are not re-sampled on a re-run


def test_samples_step_caps_prompts_and_cuts_oracles_to_the_sample_budget(
        tmp_path: Path, tiny_model_dir: Path, pairs: list[GradedPair]) -> None:
    write_jsonl(str(tmp_path / "cot.jsonl"), make_cot(pairs[:12]))
    params = {"output": str(tmp_path / "out"), "model": str(tiny_model_dir), "cot": str(tmp_path / "cot.jsonl"),
              "seed": 0, "chat_template": False, "samples": 2, "temperature": 1.0, "top_p": 1.0,
              "max_new_tokens": 6, "max_prompts": 5, "pairs_per_prompt": 1, "use_vllm": False}
    metrics = sampling_step.run(params)
    assert metrics["prompts"] == 5
    tokenizer = load_tokenizer(str(tiny_model_dir))
    for pair in read_jsonl(str(tmp_path / "out" / "pairs.jsonl"), PreferencePair):
        if pair.case == "oracle":
            assert len(tokenizer(pair.chosen, add_special_tokens=False)["input_ids"]) <= 6 + 1  # decode may re-merge


def test_difficulty_step_keeps_only_the_band(tmp_path: Path, tiny_model_dir: Path,
                                             pairs: list[GradedPair]) -> None:
    write_jsonl(str(tmp_path / "train.jsonl"), pairs)
    params = {"output": str(tmp_path / "out"), "model": str(tiny_model_dir), "train": str(tmp_path / "train.jsonl"),
              "seed": 0, "chat_template": False, "group_size": 8, "prompts_per_round": 20,
              "band": {"lower": 0.01, "upper": 0.9}, "class_balance": True, "temperature": 1.0,
              "max_completion_length": 16, "use_vllm": False}
    report = difficulty_step.run(params)
    scored = read_jsonl(str(tmp_path / "out" / "difficulty.jsonl"), DifficultyRow)
    pool = read_jsonl(str(tmp_path / "out" / "pool.jsonl"), DifficultyRow)
    assert report["scored"] == len(scored) == 20
    assert report["too_easy"] + report["too_hard"] + report["in_band"] == 20
    assert all(0.01 < r.accuracy < 0.9 for r in pool) and report["kept"] == len(pool)
    assert all(len(r.grades) == 8 for r in scored)
    counts = {k: v for k, v in report["classes_kept"].items() if v}
    assert len(set(counts.values())) <= 1  # balanced
    json.dumps(report)  # the step result must be JSON
