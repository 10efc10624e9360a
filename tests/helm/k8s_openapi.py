"""Offline validation of Kubernetes manifests against a trimmed snapshot of the 1.36 API server's OpenAPI.

Why not kubeconform: it also needs JSON schemas at run time (its default source is a URL, unreachable
here and in CI), so it would add a Go build and still validate against converted schemas. This module
validates against the schema of the very API server the e2e tests run (`/openapi/v2` of kube-apiserver
v1.36), trimmed to the kinds the chart renders and committed as ``k8s-openapi.json``; the e2e test
``tests/e2e/test_helm.py::test_openapi_snapshot_matches_apiserver`` proves the snapshot equals what that
server serves. Validation is strict like ``kubectl --validate=strict``: unknown fields are errors.

Refresh (after a Kubernetes bump):  RELMODEL_UPDATE_OPENAPI_SNAPSHOT=1 pytest tests/e2e/test_helm.py -k snapshot
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("k8s-openapi.json")

#: The kinds the chart (and the operator, for the kind example) renders: (apiVersion, kind).
KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ServiceAccount"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "Job"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
)

_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def _api_version(gvk: Mapping[str, str]) -> str:
    return f"{gvk['group']}/{gvk['version']}" if gvk.get("group") else gvk["version"]


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            yield ref.removeprefix("#/definitions/")
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _strip_docs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_docs(v) for k, v in node.items() if k not in ("description", "x-kubernetes-list-map-keys")}
    if isinstance(node, list):
        return [_strip_docs(v) for v in node]
    return node


def trim(openapi: Mapping[str, Any], kinds: Iterable[tuple[str, str]] = KINDS) -> dict[str, Any]:
    """The definitions of `kinds` and everything they reference, without descriptions (stable, small)."""
    definitions: Mapping[str, Any] = openapi["definitions"]
    wanted = set(kinds)
    roots: dict[str, str] = {}
    for name, schema in definitions.items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            if (_api_version(gvk), gvk["kind"]) in wanted:
                roots[f"{_api_version(gvk)}/{gvk['kind']}"] = name
    missing = {f"{a}/{k}" for a, k in wanted} - set(roots)
    if missing:
        raise ValueError(f"the OpenAPI document lacks {sorted(missing)}")
    keep: set[str] = set()
    todo = list(roots.values())
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        todo.extend(_refs(definitions[name]))
    return {
        "source": "kube-apiserver /openapi/v2, trimmed by tests/helm/k8s_openapi.py",
        "kinds": dict(sorted(roots.items())),
        "definitions": {name: _strip_docs(definitions[name]) for name in sorted(keep)},
    }


def _strict(node: Any) -> Any:
    """Forbid unknown fields on every object schema that lists its properties (kubectl --validate=strict)."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out and not out.get(
                "x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


@functools.cache
def _load(path: Path = SNAPSHOT) -> dict[str, Any]:
    snapshot: dict[str, Any] = json.loads(path.read_text())
    definitions = _strict(copy.deepcopy(snapshot["definitions"]))
    # OpenAPI v2 spells these as strings with a format; manifests use numbers too (8080, cpu: 1).
    definitions[_INT_OR_STRING] = {"type": ["integer", "string"]}
    definitions[_QUANTITY] = {"type": ["string", "number"]}
    return {"kinds": snapshot["kinds"], "definitions": definitions}


@functools.cache
def _validator(api_version: str, kind: str) -> Any:
    import jsonschema_rs  # schemathesis' dependency, part of the [dev] extra

    loaded = _load()
    root = loaded["kinds"].get(f"{api_version}/{kind}")
    if root is None:
        raise KeyError(f"no schema for {api_version} {kind} in {SNAPSHOT.name} (known: {sorted(loaded['kinds'])})")
    return jsonschema_rs.Draft4Validator({"$ref": f"#/definitions/{root}", "definitions": loaded["definitions"]})


def known(api_version: str, kind: str) -> bool:
    return f"{api_version}/{kind}" in _load()["kinds"]


def validate(doc: Mapping[str, Any]) -> list[str]:
    """Schema errors of one manifest, as 'Kind/name: path: message' lines (empty when valid)."""
    validator = _validator(doc["apiVersion"], doc["kind"])
    where = f"{doc['kind']}/{doc.get('metadata', {}).get('name', '?')}"
    return [f"{where}: /{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(dict(doc))]
