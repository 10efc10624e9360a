"""A small synchronous Kubernetes REST client over the official client's config and transport (dicts in/out)."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client, config

from relmodel.operator.crd import PLURAL, VERSION
from relmodel.spec import API_GROUP

_PATHS = {
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
    "Pod": "/api/v1/namespaces/{ns}/pods",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "Service": "/api/v1/namespaces/{ns}/services",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "RelevanceModel": f"/apis/{API_GROUP}/{VERSION}/namespaces/{{ns}}/{PLURAL}",
}


class KubeError(Exception):
    """An API error with its HTTP status and the server's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def load_config() -> client.ApiClient:
    """In-cluster config when in a pod, else $KUBECONFIG / ~/.kube/config."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


class Kube:
    def __init__(self, api: client.ApiClient | None = None, timeout: float = 30.0) -> None:
        self.api = api or load_config()
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None,
                content_type: str = "application/json") -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = self.api.param_serialize(
            method, path, query_params=list((query or {}).items()), header_params=headers,
            body=body, auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*params, _request_timeout=self.timeout)
        response.read()
        raw = response.data or b""
        if response.status >= 400:
            try:
                message = json.loads(raw).get("message", raw.decode(errors="replace"))
            except ValueError:
                message = raw.decode(errors="replace")
            raise KubeError(response.status, message)
        return json.loads(raw) if raw else None

    @staticmethod
    def path(kind: str, namespace: str, name: str | None = None) -> str:
        base = _PATHS[kind].format(ns=namespace)
        return f"{base}/{name}" if name else base

    def list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        return list(self.request("GET", self.path(kind, namespace), query={"labelSelector": selector})["items"])

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.request("GET", self.path(kind, namespace, name)))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, obj: dict[str, Any]) -> bool:
        """Create `obj`; False when it already exists (409 is fine: names are deterministic)."""
        try:
            self.request("POST", self.path(obj["kind"], obj["metadata"]["namespace"]), body=obj)
        except KubeError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def merge_patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any],
                    subresource: str | None = None) -> Any:
        path = self.path(kind, namespace, name) + (f"/{subresource}" if subresource else "")
        return self.request("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def delete(self, kind: str, namespace: str, name: str) -> None:
        try:
            self.request("DELETE", self.path(kind, namespace, name), body={"propagationPolicy": "Background"})
        except KubeError as exc:
            if exc.status != 404:
                raise


def post_event(kube: Kube, body: dict[str, Any] | Any, type_: str, reason: str, message: str, now: str) -> None:
    """A core/v1 Event about `body` (what `kubectl describe` lists), from the relmodel-operator."""
    meta = body["metadata"]
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": body["apiVersion"], "kind": body["kind"], "name": meta["name"],
            "namespace": meta["namespace"], "uid": meta["uid"],
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": "relmodel-operator"},
        "reportingComponent": "relmodel-operator",
        "reportingInstance": "relmodel-operator",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    kube.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=event)
