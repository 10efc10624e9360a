"""Generate the RelevanceModel CRD from the pydantic models (spec.py and status.py).

    python -m relmodel.operator.crd            # print the CRD YAML
    python -m relmodel.operator.crd --write    # update helm/relmodel/crds/relevancemodels.yaml
    python -m relmodel.operator.crd --check    # exit 1 when the checked-in file drifted

pydantic's JSON schema (draft 2020-12) becomes a Kubernetes *structural* schema: $refs inlined,
`anyOf [X, null]` -> X + nullable, const/Literal -> enum, exclusive bounds -> OpenAPI v3.0 booleans,
`additionalProperties: false` dropped (the API server prunes unknown fields, and kubectl's default
server-side `--validate=strict` refuses them with "unknown field"), free-form dicts ->
`x-kubernetes-preserve-unknown-fields`, and type unions that structural schemas cannot express
(LoRA targetModules: a list or "all-linear") -> preserve-unknown-fields, checked by the operator
(CEL cannot see untyped fields). CEL rules on the models are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from relmodel.operator.status import RelevanceModelStatus
from relmodel.spec import API_GROUP, KIND, RelevanceModelSpec

VERSION = "v1alpha1"
PLURAL = "relevancemodels"
SINGULAR = "relevancemodel"
SHORT_NAMES = ["relm"]
CRD_NAME = f"{PLURAL}.{API_GROUP}"
CRD_PATH = Path("helm/relmodel/crds/relevancemodels.yaml")

_KEEP = {
    "type", "description", "default", "enum", "format", "pattern", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems",
    "required", "properties", "items", "additionalProperties", "nullable", "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string",
}
_CEL_TYPES = {"string": "string", "integer": "int", "number": "double", "boolean": "bool",
              "array": "list", "object": "map"}

# Rules on the whole object (metadata.name is the only metadata a CRD rule may read).
ROOT_RULES = [
    {
        "rule": "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 50",
        "message": "metadata.name must be a DNS-1035 label of at most 50 characters "
                   "(children are named after it and Services need a letter first)",
    },
]


class SchemaError(ValueError):
    """A pydantic schema construct that has no structural equivalent."""


def structural(schema: dict[str, Any], defs: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Convert one pydantic JSON-schema node (and its children) into a structural schema node."""
    node = _deref(schema, defs)
    variants = node.get("anyOf") or node.get("oneOf")
    if variants:
        return _union(node, variants, defs, where)
    out: dict[str, Any] = {}
    if "allOf" in node:  # pydantic wraps a $ref with siblings in allOf
        for part in node["allOf"]:
            out.update(structural(part, defs, where))
    for key, value in node.items():
        if key == "const":
            out["enum"] = [value]
        elif key == "exclusiveMinimum" and not isinstance(value, bool):
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum" and not isinstance(value, bool):
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "properties":
            out["properties"] = {name: structural(sub, defs, f"{where}.{name}") for name, sub in value.items()}
        elif key == "items":
            out["items"] = structural(value, defs, f"{where}[]")
        elif key == "additionalProperties":
            if isinstance(value, dict) and value:
                out["additionalProperties"] = structural(value, defs, f"{where}.*")
            elif value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            # False: the structural default (unknown fields pruned / refused by strict validation)
        elif key == "default":
            if value is not None:
                out["default"] = value
        elif key in _KEEP:
            out.setdefault(key, value)
    if "type" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        if "enum" in out:
            out["type"] = _json_type(out["enum"][0])
        else:
            raise SchemaError(f"{where or '(root)'}: no type in {schema}")
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _deref(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        merged = {**defs[name], **{k: v for k, v in schema.items() if k != "$ref"}}
        schema = merged
    return schema


def _union(node: dict[str, Any], variants: list[dict[str, Any]], defs: dict[str, Any], where: str) -> dict[str, Any]:
    siblings = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
    real = [v for v in variants if _deref(v, defs).get("type") != "null"]
    nullable = len(real) < len(variants)
    if len(real) == 1:
        out = structural({**_deref(real[0], defs), **siblings}, defs, where)
    else:
        # Different types under one field: structural schemas need one type, so keep the value
        # as is and let a generated CEL rule say which shapes are allowed.
        alternatives = [structural(v, defs, where) for v in real]
        # No default here: the API server cannot type-check one on an untyped node (pydantic applies it).
        out = {k: v for k, v in structural({**siblings, "type": "object"}, defs, where).items()
               if k == "description"}
        out["x-kubernetes-preserve-unknown-fields"] = True
        # CEL cannot see untyped fields, so the shapes are stated in the description; the operator
        # validates the value with the pydantic model and reports a wrong one as phase Invalid.
        allowed = " or ".join(_describe(a) for a in alternatives)
        out["description"] = f"{out.get('description', '').rstrip('.')}. One of: {allowed}.".lstrip(". ")
    if nullable:
        out["nullable"] = True
    return out


def _describe(alt: dict[str, Any]) -> str:
    if "enum" in alt:
        return " or ".join(json.dumps(v) for v in alt["enum"])
    if alt.get("type") == "array" and "items" in alt:
        return f"a list of {alt['items'].get('type', 'values')}s"
    return f"a {alt.get('type', 'value')}"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def model_schema(model: type[Any]) -> dict[str, Any]:
    """The structural schema of a pydantic model (by alias, i.e. camelCase)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}), "")


def printer_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Stage", "type": "string", "jsonPath": ".status.currentStep"},
        {"name": "MacroF1", "type": "number", "jsonPath": ".status.macroF1"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition object."""
    spec = model_schema(RelevanceModelSpec)
    spec["description"] = "What to train (SFT -> DPO -> GRPO), how to gate it and how to serve it."
    status = model_schema(RelevanceModelStatus)
    status["description"] = "Observed state, written by the relmodel operator."
    root = {
        "type": "object",
        "description": "A TaoSR1-style reasoning relevance model: trained, evaluated, gated and served.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "x-kubernetes-validations": ROOT_RULES,
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "relmodel", "app.kubernetes.io/part-of": "relmodel"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND, "listKind": f"{KIND}List", "plural": PLURAL, "singular": SINGULAR,
                "shortNames": SHORT_NAMES, "categories": ["relmodel"],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": printer_columns(),
                "schema": {"openAPIV3Schema": root},
            }],
        },
    }


HEADER = "# GENERATED by `python -m relmodel.operator.crd --write` from relmodel.spec; do not edit.\n"


def render_crd() -> str:
    return HEADER + yaml.safe_dump(build_crd(), sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the RelevanceModel CRD from the pydantic models.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write {CRD_PATH}")
    mode.add_argument("--check", action="store_true", help=f"fail when {CRD_PATH} differs")
    parser.add_argument("--path", type=Path, default=CRD_PATH)
    args = parser.parse_args(argv)
    text = render_crd()
    if args.write:
        args.path.parent.mkdir(parents=True, exist_ok=True)
        args.path.write_text(text, encoding="utf-8")
        print(f"wrote {args.path}", file=sys.stderr)
    elif args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
        if current != text:
            print(f"{args.path} is out of date: run `python -m relmodel.operator.crd --write`", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
