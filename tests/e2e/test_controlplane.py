"""The e2e harness itself: a real apiserver answers kubectl, and the full cluster runs Jobs and Deployments."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from relmodel.testing import ControlPlane, ControlPlaneError, ensure_binaries
from relmodel.testing import controlplane as cp_module
from relmodel.testing.controlplane import POD_FAIL_ANNOTATION, GoNotFoundError, kwok_stages

e2e = pytest.mark.e2e


def kubectl(*args: str, input: str | None = None, timeout: float = 120) -> str:
    """Plain `kubectl` from PATH with the KUBECONFIG the *_kubeconfig fixtures export."""
    result = subprocess.run(
        ["kubectl", *args], input=input, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def kubectl_json(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json"))


def apply(*docs: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


# ------------------------------------------------------------------------------------ apiserver only


@e2e
def test_kubectl_matches_server_minor(control_plane: ControlPlane, control_plane_kubeconfig: Path) -> None:
    assert os.environ["KUBECONFIG"] == str(control_plane_kubeconfig)
    versions = json.loads(kubectl("version", "-o", "json"))
    server, client = versions["serverVersion"], versions["clientVersion"]
    assert server["gitVersion"].startswith("v1.36."), server
    assert client["minor"] == server["minor"], "the built kubectl must come first on PATH"


@e2e
def test_namespace_and_configmap_round_trip(control_plane_kubeconfig: Path) -> None:
    ns = unique("cm")
    apply(
        namespace(ns),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": ns},
            "data": {"model": "taosr1", "threshold": "0.5"},
        },
    )
    got = kubectl_json("get", "configmap", "settings", "-n", ns)
    assert got["data"] == {"model": "taosr1", "threshold": "0.5"}
    assert kubectl_json("get", "namespace", ns)["status"]["phase"] == "Active"


def check_crd_and_custom_object() -> None:
    """A CRD becomes Established, a custom object round-trips, and its schema is enforced."""
    group, plural = f"{unique('g')}.relmodel.test", "widgets"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {"size": {"type": "integer", "minimum": 1}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    apply(crd)
    kubectl("wait", "--for=condition=Established", f"crd/{plural}.{group}", "--timeout=60s")
    ns = unique("crd")
    apply(
        namespace(ns),
        {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "namespace": ns},
            "spec": {"size": 3},
        },
    )
    assert kubectl_json("get", f"{plural}.{group}", "w", "-n", ns)["spec"] == {"size": 3}

    # The schema is enforced by the real apiserver.
    bad = yaml.safe_dump(
        {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "bad", "namespace": ns},
            "spec": {"size": 0},
        }
    )
    rejected = subprocess.run(["kubectl", "apply", "-f", "-"], input=bad, capture_output=True, text=True, check=False)
    assert rejected.returncode != 0 and "spec.size" in rejected.stderr


@e2e
def test_crd_and_custom_object(control_plane_kubeconfig: Path) -> None:
    check_crd_and_custom_object()


@e2e
def test_crd_and_custom_object_on_cluster(cluster_kubeconfig: Path) -> None:
    check_crd_and_custom_object()


@e2e
def test_stop_leaves_no_processes(control_plane: ControlPlane, tmp_path: Path) -> None:
    with ControlPlane(bin_dir=control_plane.bin_dir, workdir=tmp_path) as plane:
        pids = [p.pid for p in plane._procs]
        assert plane.request("GET", "/readyz") == "ok"
        assert (tmp_path / "logs" / "kube-apiserver.log").exists()
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not (tmp_path / "etcd").exists(), "etcd data must be dropped on stop"


# ------------------------------------------------------------------------------------- full cluster


def job(name: str, ns: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox:1.37", "command": ["true"]}],
                },
            },
        },
    }


@e2e
def test_job_completes(cluster_kubeconfig: Path) -> None:
    ns = unique("job")
    apply(namespace(ns), job("trivial", ns))
    kubectl("wait", "-n", ns, "--for=condition=Complete", "job/trivial", "--timeout=90s")
    status = kubectl_json("get", "job", "trivial", "-n", ns)["status"]
    assert status["succeeded"] == 1
    pod = kubectl_json("get", "pods", "-n", ns, "-l", "job-name=trivial")["items"][0]
    assert pod["spec"]["nodeName"] == "kwok-node-0"
    assert pod["status"]["phase"] == "Succeeded"


@e2e
def test_job_pod_failure_annotation(cluster_kubeconfig: Path) -> None:
    ns = unique("jobfail")
    apply(namespace(ns), job("broken", ns, {POD_FAIL_ANNOTATION: "true"}))
    kubectl("wait", "-n", ns, "--for=condition=Failed", "job/broken", "--timeout=90s")
    assert kubectl_json("get", "job", "broken", "-n", ns)["status"]["failed"] == 1


@e2e
def test_deployment_becomes_available(cluster_kubeconfig: Path) -> None:
    ns = unique("deploy")
    labels = {"app": "gateway"}
    apply(
        namespace(ns),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "gateway", "namespace": ns},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "main", "image": "nginx:1.29"}]},
                },
            },
        },
    )
    kubectl("wait", "-n", ns, "--for=condition=Available", "deployment/gateway", "--timeout=90s")
    assert kubectl_json("get", "deployment", "gateway", "-n", ns)["status"]["readyReplicas"] == 2


@e2e
def test_namespace_deletion_finishes(cluster_kubeconfig: Path) -> None:
    ns = unique("gone")
    apply(namespace(ns), job("trivial", ns))
    kubectl("wait", "-n", ns, "--for=condition=Complete", "job/trivial", "--timeout=90s")
    kubectl("delete", "namespace", ns, "--wait=true", "--timeout=90s")
    result = subprocess.run(["kubectl", "get", "namespace", ns], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "NotFound" in result.stderr


# ------------------------------------------------------------------------------------- no binaries


def test_no_go_raises_go_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """The conftest turns this error (and only this one) into a skip."""
    for var in (cp_module.ENV_BIN_DIR, "KUBEBUILDER_ASSETS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(cp_module, "find_go", lambda: None)
    with pytest.raises(GoNotFoundError, match="no `go` was found"):
        ensure_binaries(("etcd",))


def test_explicit_bin_dir_must_be_complete(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(cp_module.ENV_BIN_DIR, str(tmp_path))
    with pytest.raises(ControlPlaneError, match="lacks etcd"):
        ensure_binaries(("etcd",))


def test_kwok_stages_are_valid_yaml() -> None:
    stages = list(yaml.safe_load_all(kwok_stages(job_pod_delay=2.5)))
    assert [s["metadata"]["name"] for s in stages] == [
        "node-initialize",
        "pod-ready",
        "pod-complete",
        "pod-fail",
        "pod-delete",
    ]
    assert stages[2]["spec"]["delay"]["durationMilliseconds"] == 2500
