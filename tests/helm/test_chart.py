"""The Helm chart without a cluster: lint, render, strict offline schema validation, values schema errors,
least-privilege RBAC, pod security, and consistency with the operator (images, storage, ports)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from relmodel.operator import children as ch
from relmodel.operator.crd import CRD_PATH
from relmodel.operator.handlers import settings_from_env
from relmodel.planner import build_pipeline
from relmodel.spec import parse_manifest
from tests.helm import k8s_openapi
from tests.helm.helmtool import CHART, NAMESPACE, ROOT, Helm, by_kind

KIND_VALUES = CHART / "values-kind.yaml"
KIND_EXAMPLE = ROOT / "examples" / "relevancemodel-kind.yaml"

#: Value sets that together switch every template branch on (each must render and validate).
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "kind": yaml.safe_load(KIND_VALUES.read_text()),
    "cluster-wide": {"watch": {"allNamespaces": True}},
    "other-namespace": {"watch": {"namespace": "models"}},
    "external-redis-url": {"redis": {"enabled": False, "externalUrl": "redis://redis.example:6379/0"}},
    "external-redis-secret": {"redis": {"enabled": False, "existingSecret": "redis-url"}},
    "object-store": {"storage": {"pvc": {"create": False},
                                 "objectStore": {"uri": "s3://models/relmodel", "existingSecret": "s3-creds"}}},
    "existing-claim": {"storage": {"pvc": {"existingClaim": "shared-models"}}},
    "everything-off": {"worker": {"enabled": False}, "runsService": {"enabled": False},
                       "redis": {"enabled": False, "externalUrl": "redis://r:6379/0"},
                       "operator": {"enabled": False}, "serviceAccount": {"create": False}, "rbac": {"create": False}},
    "tuned": {"operator": {"verbose": True, "env": [{"name": "X", "value": "1"}], "nodeSelector": {"a": "b"},
                           "tolerations": [{"key": "k", "operator": "Exists"}], "podAnnotations": {"a": "b"}},
              "worker": {"replicas": 3, "concurrency": 4, "affinity": {"nodeAffinity": {}}},
              "images": {"pullSecrets": [{"name": "regcred"}], "operator": {"repository": "my.reg/op", "tag": "1.2.3"}},
              "serviceAccount": {"annotations": {"iam": "role"}}},
}
#: Extra kinds rendered only with the Prometheus Operator options (no core schema: checked by hand below).
MONITORING = {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
                          "podMonitor": {"enabled": True}}}


def pods(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# --- lint and render -------------------------------------------------------------------------------


def test_lint_strict_is_clean(helm: Helm) -> None:
    for extra in ([], ["-f", str(KIND_VALUES)]):
        result = helm.run("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *extra)
        assert "0 chart(s) failed" in result.stdout, result.stdout
        problems = [line for line in result.stdout.splitlines() if line.startswith(("[WARNING]", "[ERROR]"))]
        assert not problems, result.stdout


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_renders_and_validates_offline(helm: Helm, variant: str) -> None:
    result = helm.template_text(VARIANTS[variant])
    assert not result.stderr.strip(), result.stderr  # no warnings either
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert docs
    errors = [e for d in docs for e in k8s_openapi.validate(d)]
    assert not errors, "\n".join(errors)
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), f"duplicate objects: {names}"
    for doc in docs:
        assert len(doc["metadata"]["name"]) <= 63
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == "relmodel"


def test_defaults_render_the_whole_platform(helm: Helm) -> None:
    docs = helm.template()
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == sorted([
        ("ServiceAccount", "relmodel-operator"), ("Role", "relmodel-operator"), ("RoleBinding", "relmodel-operator"),
        ("Deployment", "relmodel-operator"), ("Deployment", "relmodel-redis"), ("Service", "relmodel-redis"),
        ("Deployment", "relmodel-worker"), ("Deployment", "relmodel-runs"), ("Service", "relmodel-runs"),
        ("PersistentVolumeClaim", "relmodel-storage"),
    ])
    assert all(d["metadata"].get("namespace") == NAMESPACE for d in docs)


def test_crd_is_the_generated_one(helm: Helm) -> None:
    """crds/ holds exactly the file `python -m relmodel.operator.crd` writes (never hand-edited)."""
    assert (ROOT / CRD_PATH).resolve() == (CHART / "crds" / "relevancemodels.yaml").resolve()
    docs = helm.template(include_crds=True)
    crd = next(d for d in docs if d["kind"] == "CustomResourceDefinition")
    assert crd == yaml.safe_load((ROOT / CRD_PATH).read_text())


def test_monitoring_objects(helm: Helm) -> None:
    docs = helm.template(MONITORING)
    monitors = {d["kind"]: d for d in docs if d["apiVersion"] == "monitoring.coreos.com/v1"}
    assert set(monitors) == {"ServiceMonitor", "PodMonitor"}
    service = by_kind(docs, "Service")["relmodel-runs"]
    sm = monitors["ServiceMonitor"]
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in sm["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
    pm = monitors["PodMonitor"]
    assert pm["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/managed-by": "relmodel-operator"}
    assert pm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "http"  # the port name children.py gives
    annotations = by_kind(docs, "Deployment")["relmodel-runs"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8090" and annotations["prometheus.io/path"] == "/metrics"


# --- values schema: bad values fail with the offending key named -------------------------------------

BAD_VALUES: list[tuple[list[str], str]] = [
    (["operator.replicas=2"], "at '/operator/replicas': maximum: got 2, want 1"),
    (["images.pullPolicy=Sometimes"], "at '/images/pullPolicy': value must be one of 'Always', 'IfNotPresent'"),
    (["worker.concurrency=0"], "at '/worker/concurrency': minimum: got 0, want 1"),
    (["opertor.replicas=1"], "additional properties 'opertor' not allowed"),
    (["redis.externalUrl=http://x"], "at '/redis/externalUrl': 'http://x' does not match pattern"),
    (["storage.pvc.size=lots"], "at '/storage/pvc/size': 'lots' does not match pattern"),
    (["runsService.port=70000"], "at '/runsService/port': maximum: got 70,000, want 65,535"),
    (["podSecurityContext.runAsNonRoot=false"], "at '/podSecurityContext/runAsNonRoot': value must be true"),
    (["containerSecurityContext.allowPrivilegeEscalation=true"],
     "at '/containerSecurityContext/allowPrivilegeEscalation': value must be false"),
    (["storage.pvc.accessModes={ReadWriteSometimes}"], "at '/storage/pvc/accessModes/0': value must be one of"),
    (["watch.allNamespaces=yes"], "at '/watch/allNamespaces': got string, want boolean"),
    (["images.tag=latest"], "the operator image tag is 'latest': pin a version"),
    (["images.gateway.tag=latest"], "the gateway image tag is 'latest': pin a version"),
    (["redis.enabled=false"], "redis.externalUrl (or redis.existingSecret) is required when redis.enabled=false"),
    (["redis.externalUrl=redis://r:6379/0"], "redis: set either redis.enabled=true"),
    (["storage.pvc.create=false"], "storage: set storage.pvc.create=true, storage.pvc.existingClaim, or"),
    (["storage.pvc.create=false", "storage.objectStore.uri=file:///x"],
     "storage.objectStore.uri must be an object-store URI"),
    (["watch.allNamespaces=true", "watch.namespace=models"], "watch.namespace and watch.allNamespaces=true exclude"),
    (["serviceAccount.create=false"], "serviceAccount.name is required when serviceAccount.create=false"),
]


@pytest.mark.parametrize(("sets", "message"), BAD_VALUES, ids=[" ".join(s) for s, _ in BAD_VALUES])
def test_bad_values_are_rejected_clearly(helm: Helm, sets: list[str], message: str) -> None:
    result = helm.template_text(sets=sets, check=False)
    assert result.returncode != 0, f"{sets} rendered:\n{result.stdout[:400]}"
    assert message in result.stderr, result.stderr


def test_default_values_match_the_schema() -> None:
    import jsonschema_rs

    schema = json.loads((CHART / "values.schema.json").read_text())
    validator = jsonschema_rs.Draft7Validator(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert not [e.message for e in validator.iter_errors(defaults)]
    merged = merge(defaults, yaml.safe_load(KIND_VALUES.read_text()))  # values-kind.yaml is an overlay
    assert not [e.message for e in validator.iter_errors(merged)]


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# --- RBAC: least privilege ------------------------------------------------------------------------------

#: (apiGroup, resource) -> verbs: what src/relmodel/operator (kube.py, reconcile.py, handlers.py) and kopf call.
OPERATOR_RULES: dict[tuple[str, str], set[str]] = {
    ("relmodel.dev", "relevancemodels"): {"get", "list", "watch", "patch"},
    ("relmodel.dev", "relevancemodels/status"): {"patch"},
    ("relmodel.dev", "relevancemodels/finalizers"): {"update"},
    ("batch", "jobs"): {"list", "watch", "create", "delete"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch"},
    ("", "services"): {"get", "list", "create", "patch"},
    ("", "configmaps"): {"get", "list", "create", "patch"},
    ("", "pods"): {"list"},
    ("", "events"): {"create"},
}


def granted(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def test_namespaced_rbac_is_exactly_what_the_operator_calls(helm: Helm) -> None:
    docs = helm.template()
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")
    role = by_kind(docs, "Role")["relmodel-operator"]
    assert role["metadata"]["namespace"] == NAMESPACE
    rules = granted(role)
    assert rules == OPERATOR_RULES
    assert not any("*" in verbs or "*" in key[1] for key, verbs in rules.items())
    assert not any(res in ("secrets", "pods/log", "pods/exec", "namespaces") for _, res in rules)
    binding = by_kind(docs, "RoleBinding")["relmodel-operator"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "relmodel-operator"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "relmodel-operator", "namespace": NAMESPACE}]


def test_cluster_role_only_when_asked_for(helm: Helm) -> None:
    docs = helm.template({"watch": {"allNamespaces": True}})
    assert not by_kind(docs, "Role") and not by_kind(docs, "RoleBinding")
    assert granted(by_kind(docs, "ClusterRole")["relmodel-operator"]) == OPERATOR_RULES
    assert by_kind(docs, "ClusterRoleBinding")["relmodel-operator"]["roleRef"]["kind"] == "ClusterRole"
    args = pods(docs)["relmodel-operator"]["containers"][0]["args"]
    assert "--all-namespaces" in args and not any(a.startswith("--namespace") for a in args)


def test_watch_other_namespace(helm: Helm) -> None:
    docs = helm.template({"watch": {"namespace": "models"}})
    assert by_kind(docs, "Role")["relmodel-operator"]["metadata"]["namespace"] == "models"
    assert by_kind(docs, "RoleBinding")["relmodel-operator"]["subjects"][0]["namespace"] == NAMESPACE
    assert "--namespace=models" in pods(docs)["relmodel-operator"]["containers"][0]["args"]


# --- pod security -----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["defaults", "object-store", "kind"])
def test_every_pod_is_locked_down(helm: Helm, variant: str) -> None:
    for name, spec in pods(helm.template(VARIANTS[variant])).items():
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0, name
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is (name == "relmodel-operator"), name
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        assert volumes["tmp"] == {"name": "tmp", "emptyDir": {}}, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"], name
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], name
            assert not c["image"].endswith(":latest"), name


# --- consistency with the operator and the kind quickstart ------------------------------------------------


def test_operator_gets_default_images_and_settings(helm: Helm) -> None:
    docs = helm.template(VARIANTS["kind"])
    container = pods(docs)["relmodel-operator"]["containers"][0]
    assert container["image"] == "relmodel/operator:dev"
    assert container["args"] == ["operator", f"--namespace={NAMESPACE}", "--liveness=http://0.0.0.0:8080/healthz"]
    env = env_of(container)
    # The variables handlers.settings_from_env reads.
    assert env["RELMODEL_TRAINER_IMAGE"] == "relmodel/trainer-cpu:dev"
    assert env["RELMODEL_ENGINE_IMAGE"] == "relmodel/engine-cpu:dev"
    assert env["RELMODEL_GATEWAY_IMAGE"] == "relmodel/gateway:dev"
    assert env["RELMODEL_OPERATOR_RESYNC_SECONDS"] == "10"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    saved = dict(os.environ)
    try:
        os.environ.update({k: v for k, v in env.items() if isinstance(v, str)})
        settings = settings_from_env()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert (settings.images.trainer, settings.images.cpu_engine, settings.images.gateway) == (
        "relmodel/trainer-cpu:dev", "relmodel/engine-cpu:dev", "relmodel/gateway:dev")
    # Data steps go to the release's data-run service: the URL names its Service and port.
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-runs"))
    assert settings.data_runs_url == (f"http://{service['metadata']['name']}.{NAMESPACE}.svc:"
                                      f"{service['spec']['ports'][0]['port']}")
    without = helm.template(VARIANTS["kind"], ["runsService.enabled=false"])
    assert "RELMODEL_DATA_RUNS_URL" not in env_of(pods(without)["relmodel-operator"]["containers"][0])
    assert settings.resync_seconds == 10.0


def test_workers_and_service_share_the_broker(helm: Helm) -> None:
    docs = helm.template()
    redis = by_kind(docs, "Service")["relmodel-redis"]
    url = f"redis://relmodel-redis:{redis['spec']['ports'][0]['port']}/0"
    spec = pods(docs)
    assert env_of(spec["relmodel-worker"]["containers"][0])["RELMODEL_BROKER_URL"] == url
    runs = spec["relmodel-runs"]["containers"][0]
    assert env_of(runs)["RELMODEL_BROKER_URL"] == url
    assert runs["args"] == ["runs-service", "--port", "8090"]
    assert spec["relmodel-worker"]["containers"][0]["args"] == ["worker", "--concurrency", "1"]
    service = by_kind(docs, "Service")["relmodel-runs"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert {"name": "http", "containerPort": 8090, "protocol": "TCP"} in runs["ports"]
    redis_pod = spec["relmodel-redis"]["containers"][0]
    assert redis_pod["image"].split(":")[1][0].isdigit()  # a pinned Redis version


def test_external_redis_from_secret(helm: Helm) -> None:
    spec = pods(helm.template(VARIANTS["external-redis-secret"]))
    assert "relmodel-redis" not in spec
    assert env_of(spec["relmodel-worker"]["containers"][0])["RELMODEL_BROKER_URL"] == {
        "secretKeyRef": {"name": "redis-url", "key": "url"}}


def test_object_store_credentials_reach_the_pods(helm: Helm) -> None:
    docs = helm.template(VARIANTS["object-store"])
    assert not by_kind(docs, "PersistentVolumeClaim")
    for name, spec in pods(docs).items():
        if name == "relmodel-redis":
            continue
        container = spec["containers"][0]
        assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}], name
        assert all(m["name"] != "storage" for m in container["volumeMounts"]), name


def test_kind_example_uses_the_charts_storage(helm: Helm) -> None:
    """examples/relevancemodel-kind.yaml: the operator's step Jobs mount the chart's PVC where the chart's
    own pods mount it, in the namespace the chart watches, and serve on the CPU engine."""
    docs = helm.template(VARIANTS["kind"])
    claim = by_kind(docs, "PersistentVolumeClaim")
    assert list(claim) == ["relmodel-storage"]
    worker = pods(docs)["relmodel-worker"]
    chart_mount = next(m for m in worker["containers"][0]["volumeMounts"] if m["name"] == "storage")
    chart_volume = next(v for v in worker["volumes"] if v["name"] == "storage")

    model = parse_manifest(yaml.safe_load(KIND_EXAMPLE.read_text()))
    assert model.metadata.namespace == NAMESPACE == by_kind(docs, "Role")["relmodel-operator"]["metadata"]["namespace"]
    assert model.spec.serving.engine == "cpu"
    assert ch.local_path(model.spec.storage.uri) == chart_mount["mountPath"]
    for plan in build_pipeline(model):
        if plan.kind == "serve":
            continue
        job = ch.render_job(model, plan, 0)
        pod = job["spec"]["template"]["spec"]
        assert next(v for v in pod["volumes"] if v["name"] == "storage") == chart_volume, plan.step
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "storage")
        assert mount["mountPath"] == chart_mount["mountPath"], plan.step
        assert plan.output.startswith(model.spec.storage.uri), plan.step
        assert not k8s_openapi.validate(job)


def test_examples_differ_only_where_the_cluster_needs_it() -> None:
    tiny = yaml.safe_load((ROOT / "examples" / "relevancemodel-tiny.yaml").read_text())
    kind = yaml.safe_load(KIND_EXAMPLE.read_text())
    expected = copy.deepcopy(tiny)
    expected["metadata"]["namespace"] = NAMESPACE
    expected["spec"]["storage"]["pvc"] = "relmodel-storage"
    assert kind == expected


def test_kind_config_and_doc() -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["nodes"][0]["role"] == "control-plane"
    doc = (ROOT / "docs" / "kind.md").read_text()
    for needed in ("kind create cluster --config kind-config.yaml", "kind load docker-image",
                   "helm install relmodel helm/relmodel", "-f helm/relmodel/values-kind.yaml",
                   "kubectl apply -f examples/relevancemodel-kind.yaml", "get relm -w", "port-forward",
                   "/v1/relevance/score", "hack/build-helm.sh"):
        assert needed in doc, needed
    # Every image the kind values name is built and loaded in the doc.
    values = yaml.safe_load(KIND_VALUES.read_text())["images"]
    for name in values["names"].values():
        ref = f"{values['registry']}/{name}:{values['tag']}"
        assert f"-t {ref} " in doc, f"docs/kind.md does not build {ref}"
        loads = [line for line in doc.splitlines() if "kind load docker-image" in line]
        assert any(ref in line for line in loads), f"docs/kind.md does not kind-load {ref}"


def test_chart_files_are_tidy() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "relmodel"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{chart["appVersion"]}"' in pyproject, "appVersion must be the relmodel package version"
    for path in Path(CHART / "templates").iterdir():
        assert "\t" not in path.read_text(), path
