import pytest

from relmodel.errors import SpecError
from relmodel.spec import load_manifest, parse_manifest
from tests.manifests import DELETE, EXAMPLES, TINY, changed


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid(example):
    model = load_manifest(example)
    assert model.kind == "RelevanceModel"


def test_camel_case_fields_map_to_settings():
    model = parse_manifest(TINY)
    assert model.spec.stages.grpo.group_size == 8
    assert model.spec.stages.sft.training.learning_rate == 0.002
    assert model.spec.base_model.tiny is not None and model.spec.base_model.tiny.hidden_size == 96


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("spec.baseModel", DELETE, "spec.baseModel: required field missing"),
        ("spec.baseModel", {}, "exactly one of tiny, path, hub, gguf"),
        ("spec.baseModel", {"tiny": {}, "path": "/models/x"}, "exactly one of"),
        ("spec.stages.ppo", {}, "spec.stages.ppo: unknown field"),
        ("spec.stages.grpo.groupSize", -4, "groupSize: Input should be greater than or equal to 2"),
        ("spec.stages.grpo.band", {"lower": 0.5, "upper": 0.2}, "lower < upper"),
        ("spec.stages.grpo.band", {"lower": -0.1, "upper": 0.9}, "band.lower"),
        ("spec.serving.beta", 1.5, "serving.beta"),
        ("spec.stages.sft.training.epochs", "three", "epochs"),
        ("spec.datasets", {"synthetic": {}, "train": "file:///x.jsonl", "eval": "file:///y.jsonl"}, "synthetic"),
        ("spec.datasets", {"train": "file:///x.jsonl"}, "both train and eval"),
        ("spec.cot.teacher", {"kind": "openai"}, "endpoint and model"),
        ("spec.evaluation.betaGrid", {"start": 0.8, "stop": 0.3}, "start <= stop"),
        ("metadata.name", "Bad_Name", "metadata.name"),
        ("apiVersion", "relmodel.dev/v9", "apiVersion"),
    ],
)
def test_bad_manifests_name_the_field(path, value, message):
    with pytest.raises(SpecError) as excinfo:
        parse_manifest(changed(**{path: value}))
    assert message in str(excinfo.value)


def test_unreadable_or_non_yaml_manifest(tmp_path):
    with pytest.raises(SpecError, match="cannot read"):
        load_manifest(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_manifest(bad)
    bad.write_text("- a list")
    with pytest.raises(SpecError, match="expected a RelevanceModel object"):
        load_manifest(bad)
