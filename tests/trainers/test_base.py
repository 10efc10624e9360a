"""The `base` step: a tiny model from the run's data, and importing an existing model directory."""

from __future__ import annotations

from pathlib import Path

from relmodel.data.jsonl import write_jsonl
from relmodel.data.schemas import GradedPair
from relmodel.modeling import grade_token_ids, load_model, load_tokenizer
from relmodel.trainers import base


def test_tiny_from_data_dir(tmp_path: Path, pairs: list[GradedPair]) -> None:
    write_jsonl(str(tmp_path / "data" / "train.jsonl"), pairs)
    write_jsonl(str(tmp_path / "data" / "eval.jsonl"), pairs[:8])
    spec = {"tiny": {"vocab_size": 300, "hidden_size": 32, "num_layers": 1, "num_heads": 2}}
    metrics = base.run({"output": f"file://{tmp_path}/out", "data": str(tmp_path / "data"), "base_model": spec})
    tokenizer = load_tokenizer(str(tmp_path / "out" / "model"))
    assert metrics["source"] == "tiny" and metrics["vocab_size"] == len(tokenizer) <= 300
    assert metrics["grade_token_ids"] == grade_token_ids(tokenizer)
    assert len(tokenizer("Query: red shoe")["input_ids"]) < 10  # BPE learned the run's words
    assert load_model(str(tmp_path / "out" / "model")).config.hidden_size == 32


def test_path_source_is_copied(tmp_path: Path, tiny_model_dir: Path) -> None:
    metrics = base.run({"output": str(tmp_path / "out"), "data": str(tmp_path),
                        "base_model": {"path": str(tiny_model_dir)}})
    assert metrics["source"] == "path" and (tmp_path / "out" / "model" / "config.json").exists()
