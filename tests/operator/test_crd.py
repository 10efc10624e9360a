from pathlib import Path
from typing import Any

import pytest
import yaml

from relmodel.operator import crd

ROOT = Path(__file__).resolve().parents[2]


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, sub in (node.get("properties") or {}).items():
            out += walk(sub, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            out += walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            out += walk(node["additionalProperties"], f"{path}.*")
    return out


def schema() -> dict[str, Any]:
    return crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_checked_in_crd_matches_the_models() -> None:
    """Fails when spec.py/status.py change without `python -m relmodel.operator.crd --write`."""
    assert (ROOT / crd.CRD_PATH).read_text() == crd.render_crd()
    assert crd.main(["--check", "--path", str(ROOT / crd.CRD_PATH)]) == 0


def test_drift_is_detected(tmp_path: Path) -> None:
    stale = tmp_path / "crd.yaml"
    stale.write_text(crd.render_crd().replace("minimum: 2", "minimum: 1", 1))
    assert crd.main(["--check", "--path", str(stale)]) == 1


def test_schema_is_structural() -> None:
    for path, node in walk(schema()):
        assert "$ref" not in node and "anyOf" not in node and "oneOf" not in node and "const" not in node, path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        assert node.get("additionalProperties") is not False, path
        assert "title" not in node, path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path


def test_names_columns_and_subresources() -> None:
    spec = crd.build_crd()["spec"]
    assert spec["names"]["kind"] == "RelevanceModel" and spec["names"]["shortNames"] == ["relm"]
    assert spec["scope"] == "Namespaced" and spec["group"] == "relmodel.dev"
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Phase", "Stage", "MacroF1", "Ready", "Age"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.stages.grpo.groupSize", {"type": "integer", "minimum": 2, "maximum": 256, "default": 8}),
        (".spec.serving.beta", {"type": "number", "minimum": 0.0, "maximum": 1.0, "nullable": True}),
        (".spec.serving.engine", {"type": "string", "enum": ["vllm", "cpu"], "default": "vllm"}),
        (".spec.serving.quantization", {"type": "string", "enum": ["fp8"], "nullable": True}),
        (".spec.stages.dpo.beta", {"type": "number", "minimum": 0, "exclusiveMinimum": True}),
        (".spec.stages.grpo.band.lower", {"minimum": 0.0, "maximum": 1.0, "exclusiveMaximum": True}),
        (".spec.runtime.nodeSelector", {"type": "object", "additionalProperties": {"type": "string"}}),
        (".status.stages.*.metrics", {"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
    ],
)
def test_field_conversion(path: str, expected: dict[str, Any]) -> None:
    nodes = dict(walk(schema()))
    assert expected.items() <= nodes[path].items()


def test_cel_rules_are_kept() -> None:
    nodes = dict(walk(schema()))
    messages = {path: [r["message"] for r in node.get("x-kubernetes-validations", [])] for path, node in nodes.items()}
    assert messages[".spec.baseModel"] == ["baseModel needs exactly one of tiny, path, hub, gguf"]
    assert messages[".spec.stages.grpo.band"] == ["band needs lower < upper"]
    assert messages[".spec.cot.teacher"] == ["an openai teacher needs endpoint and model"]
    assert "metadata.name" in messages[""][0]


def test_rendered_yaml_loads() -> None:
    doc = yaml.safe_load(crd.render_crd())
    assert doc["metadata"]["name"] == "relevancemodels.relmodel.dev"
