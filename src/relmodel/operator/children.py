"""Pure renderers of the Kubernetes objects the operator owns (no I/O, easy to test).

Every child is named from the RelevanceModel's name plus its role (step, key, attempt), is
DNS-safe and at most 63 characters, and carries the app.kubernetes.io/* and relmodel.dev/* labels
the operator selects on. Owner references are added by the caller (kopf.adopt).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlparse

from relmodel.planner import StepPlan
from relmodel.serving.config import CONFIG_FILE, CumPTConfig
from relmodel.serving.vllm import vllm_args
from relmodel.spec import API_GROUP, RelevanceModel, ResourcesSpec, RuntimeSpec
from relmodel.tasks.service.models import RunCreate, RunKind

MAX_NAME = 63
CONFIG_DIR = "/config"
PARAMS_FILE = "params.json"
CUMPT_DIR = "/etc/relmodel"
ENGINE_PORT = 8000
GATEWAY_PORT = 8080
GPU_RESOURCE = "nvidia.com/gpu"

LABEL_MODEL = f"{API_GROUP}/model"
LABEL_STEP = f"{API_GROUP}/step"
LABEL_KEY = f"{API_GROUP}/key"
LABEL_ATTEMPT = f"{API_GROUP}/attempt"
LABEL_ROLE = f"{API_GROUP}/role"
ANNOTATION_CONFIG_HASH = f"{API_GROUP}/config-hash"
ANNOTATION_OUTPUT = f"{API_GROUP}/output"
#: Annotation on a RelevanceModel: a JSON object of extra annotations for every pod it creates.
ANNOTATION_POD_ANNOTATIONS = f"{API_GROUP}/pod-annotations"
#: The wrapper every step container runs: the step entry, then its result to the termination message.
STEP_WRAPPER = "relmodel.operator.stepwrap"


@dataclass(frozen=True)
class Images:
    """Default images when the spec names none (operator settings)."""

    trainer: str = "ghcr.io/relmodel/trainer:0.1.0"
    cpu_engine: str = "ghcr.io/relmodel/engine-cpu:0.1.0"
    gateway: str = "ghcr.io/relmodel/gateway:0.1.0"
    vllm: str = "vllm/vllm-openai:v{version}"  # {version}: spec.serving.vllmVersion


#: Our images run as uid 10001; the pods they run in get the restricted Pod Security profile.
NON_ROOT_UID = 10001
CONTAINER_SECURITY: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def pod_security(non_root: bool = True) -> dict[str, Any]:
    """Pod securityContext: RuntimeDefault seccomp; non-root with an fsGroup that can write storage
    (the vLLM image runs as root, so its pods get the rest of the profile only)."""
    context: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    if non_root:
        context.update(runAsNonRoot=True, runAsUser=NON_ROOT_UID, runAsGroup=NON_ROOT_UID, fsGroup=NON_ROOT_UID)
    return context


@dataclass(frozen=True)
class RenderContext:
    """What renderers need besides the spec: images, and extra pod annotations."""

    images: Images = field(default_factory=Images)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)


# --- names and labels ----------------------------------------------------------------------------


def child_name(*parts: str) -> str:
    """`parts` joined by '-', lower-cased, DNS-1123 safe; a stable hash replaces the tail past 63 chars."""
    raw = "-".join(p for p in parts if p)
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9].rstrip('-')}-{digest}"


def job_name(model: str, plan: StepPlan, attempt: int) -> str:
    return child_name(model, plan.step.value, plan.key, f"a{attempt}")


def params_name(model: str, plan: StepPlan) -> str:
    return child_name(model, plan.step.value, plan.key)


def engine_name(model: str) -> str:
    return child_name(model, "engine")


def gateway_name(model: str) -> str:
    return child_name(model, "gateway")


def cumpt_name(model: str) -> str:
    return child_name(model, "cumpt")


def labels(model: str, *, step: str | None = None, key: str | None = None, role: str | None = None) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": "relmodel",
        "app.kubernetes.io/instance": model,
        "app.kubernetes.io/managed-by": "relmodel-operator",
        "app.kubernetes.io/part-of": "relmodel",
        LABEL_MODEL: model,
    }
    if step is not None:
        out[LABEL_STEP] = step
        out["app.kubernetes.io/component"] = step
    if key is not None:
        out[LABEL_KEY] = key
    if role is not None:
        out[LABEL_ROLE] = role
        out["app.kubernetes.io/component"] = role
    return out


def selector(model: str, role: str) -> dict[str, str]:
    return {LABEL_MODEL: model, LABEL_ROLE: role}


def config_hash(data: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(data), sort_keys=True).encode()).hexdigest()[:16]


# --- runtime -------------------------------------------------------------------------------------


def stage_runtime(model: RelevanceModel, plan: StepPlan) -> RuntimeSpec:
    """`spec.runtime` overlaid with the stage's own runtime (set fields win)."""
    base = model.spec.runtime
    stages = model.spec.stages
    own = {"sft": stages.sft.runtime, "baseline": stages.sft.runtime, "samples": stages.dpo.runtime,
           "dpo": stages.dpo.runtime, "difficulty": stages.grpo.runtime, "grpo": stages.grpo.runtime,
           }.get(plan.step.value)
    if own is None:
        return base
    return RuntimeSpec(
        image=own.image or base.image,
        resources=own.resources or base.resources,
        node_selector={**base.node_selector, **own.node_selector},
        tolerations=own.tolerations or base.tolerations,
        service_account_name=own.service_account_name or base.service_account_name,
    )


def _resources(resources: ResourcesSpec | None, gpus: int = 0) -> dict[str, Any]:
    requests = dict(resources.requests) if resources else {}
    limits = dict(resources.limits) if resources else {}
    if gpus and GPU_RESOURCE not in limits and GPU_RESOURCE not in requests:
        limits[GPU_RESOURCE] = str(gpus)
    if GPU_RESOURCE in requests and GPU_RESOURCE not in limits:
        limits[GPU_RESOURCE] = requests[GPU_RESOURCE]  # extended resources need limits == requests
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _storage_mount(model: RelevanceModel) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts) for the storage PVC, mounted at the file:// root's path."""
    storage = model.spec.storage
    if not storage.pvc:
        return [], []
    path = local_path(storage.uri) or "/var/lib/relmodel"
    return ([{"name": "storage", "persistentVolumeClaim": {"claimName": storage.pvc}}],
            [{"name": "storage", "mountPath": path}])


def _storage_env(model: RelevanceModel) -> list[dict[str, Any]]:
    secret = model.spec.storage.secret_name
    return [{"secretRef": {"name": secret}}] if secret else []


def local_path(uri: str) -> str | None:
    """The local path of a file:// URI (or a plain path), else None."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return parsed.path or None
    return None


def _pod_meta(model: str, lab: dict[str, str], ctx: RenderContext, extra: Mapping[str, str] | None = None
              ) -> dict[str, Any]:
    annotations = {**ctx.pod_annotations, **(extra or {})}
    meta: dict[str, Any] = {"labels": lab}
    if annotations:
        meta["annotations"] = annotations
    return meta


# --- steps ---------------------------------------------------------------------------------------


def render_params_configmap(model: RelevanceModel, plan: StepPlan) -> dict[str, Any]:
    """The step's params (the planner's `StepPlan.params`) as `params.json`, mounted at /config."""
    name = model.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": params_name(name, plan),
            "namespace": model.metadata.namespace,
            "labels": labels(name, step=plan.step.value, key=plan.key),
            "annotations": {ANNOTATION_OUTPUT: plan.output},
        },
        "data": {PARAMS_FILE: json.dumps(plan.params, indent=2, sort_keys=True)},
    }


def step_command(plan: StepPlan) -> list[str]:
    """`python -m <entry> --config /config/params.json`, run by the wrapper that reports the result."""
    return ["python", "-m", STEP_WRAPPER, plan.entry, "--config", f"{CONFIG_DIR}/{PARAMS_FILE}"]


def render_job(model: RelevanceModel, plan: StepPlan, attempt: int, ctx: RenderContext | None = None
               ) -> dict[str, Any]:
    """The batch/v1 Job for one attempt of a `job` step (backoffLimit 0: retries are the planner's)."""
    ctx = ctx or RenderContext()
    name = model.metadata.name
    runtime = stage_runtime(model, plan)
    lab = {**labels(name, step=plan.step.value, key=plan.key), LABEL_ATTEMPT: str(attempt)}
    volumes, mounts = _storage_mount(model)
    container: dict[str, Any] = {
        "name": "step",
        "image": runtime.image or ctx.images.trainer,
        "command": step_command(plan),
        "env": [
            {"name": "RELMODEL_STEP", "value": plan.step.value},
            {"name": "RELMODEL_STEP_KEY", "value": plan.key},
            {"name": "RELMODEL_OUTPUT", "value": plan.output},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "volumeMounts": [{"name": "params", "mountPath": CONFIG_DIR, "readOnly": True}, *mounts],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": CONTAINER_SECURITY,
    }
    if env_from := _storage_env(model):
        container["envFrom"] = env_from
    if resources := _resources(runtime.resources):  # GPUs as asked for in resources (nvidia.com/gpu)
        container["resources"] = resources
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": pod_security(),
        "containers": [container],
        "volumes": [{"name": "params", "configMap": {"name": params_name(name, plan)}}, *volumes],
    }
    pod_spec.update(_placement(runtime))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(name, plan, attempt),
            "namespace": model.metadata.namespace,
            "labels": lab,
            "annotations": {ANNOTATION_OUTPUT: plan.output},
        },
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": _pod_meta(name, lab, ctx), "spec": pod_spec},
        },
    }


def render_task(model: RelevanceModel, plan: StepPlan, attempt: int, ctx: RenderContext | None = None
                ) -> dict[str, Any]:
    """A `task` step (data, CoT, sampling, difficulty) as a Job: for an operator with no data-run
    service (`--data-runs-url` unset); with one, the step is `render_run_request` instead."""
    return render_job(model, plan, attempt, ctx)


def render_run_request(plan: StepPlan) -> RunCreate:
    """A `task` step as a data-run request: its kind and exactly the planner's params. The run id
    follows from them, so the operator finds its run again after a restart without storing it."""
    return RunCreate(kind=cast(RunKind, plan.step.value), params=dict(plan.params))


# --- serving -------------------------------------------------------------------------------------


def served_model_name(model: RelevanceModel) -> str:
    return model.metadata.name


def render_cumpt_configmap(model: RelevanceModel, plan: StepPlan, config: CumPTConfig) -> dict[str, Any]:
    """The CumPT tier config the gateway reads (key cumpt.json)."""
    name = model.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": cumpt_name(name),
            "namespace": model.metadata.namespace,
            "labels": labels(name, step=plan.step.value, key=plan.key, role="cumpt"),
        },
        "data": {CONFIG_FILE: config.model_dump_json(indent=2)},
    }


def engine_args(model: RelevanceModel, plan: StepPlan) -> tuple[list[str], list[str]]:
    """(command, args) of the engine: vLLM's OpenAI server, or the CPU engine that speaks the same API."""
    serving = model.spec.serving
    weights = str(plan.params["model"])
    path = local_path(weights) or weights
    if serving.engine == "cpu":
        return ["relmodel"], ["serve-engine", "--model", path, "--served-model-name", served_model_name(model),
                              "--port", str(ENGINE_PORT)]
    return ["vllm"], vllm_args(serving, path, served_model_name=served_model_name(model), port=ENGINE_PORT)


def render_engine(model: RelevanceModel, plan: StepPlan, ctx: RenderContext | None = None) -> dict[str, Any]:
    """The engine Deployment (vLLM on GPUs, or the CPU engine when spec.serving.engine == cpu)."""
    ctx = ctx or RenderContext()
    name = model.metadata.name
    serving = model.spec.serving
    runtime = model.spec.runtime
    command, args = engine_args(model, plan)
    if serving.engine == "cpu":
        image = serving.image or runtime.image or ctx.images.cpu_engine
        gpus = 0
    else:
        image = serving.image or ctx.images.vllm.format(version=serving.vllm_version)
        gpus = 1
    volumes, mounts = _storage_mount(model)
    container: dict[str, Any] = {
        "name": "engine",
        "image": image,
        "command": command,
        "args": args,
        "ports": [{"name": "http", "containerPort": ENGINE_PORT}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5},
        "volumeMounts": mounts,
    }
    if env_from := _storage_env(model):
        container["envFrom"] = env_from
    if resources := _resources(serving.resources, gpus):
        container["resources"] = resources
    return _deployment(model, plan, "engine", engine_name(name), serving.replicas, container, volumes, ctx, {})


def render_gateway(model: RelevanceModel, plan: StepPlan, cumpt: dict[str, Any],
                   ctx: RenderContext | None = None) -> dict[str, Any]:
    """The relevance gateway Deployment; its pods roll when the CumPT config changes (hash annotation)."""
    ctx = ctx or RenderContext()
    name = model.metadata.name
    serving = model.spec.serving
    image = serving.gateway_image or serving.image or ctx.images.gateway
    container: dict[str, Any] = {
        "name": "gateway",
        "image": image,
        "command": ["relmodel"],
        "args": ["gateway", "--engine-url", f"http://{engine_name(name)}:{ENGINE_PORT}/v1",
                 "--config", f"{CUMPT_DIR}/{CONFIG_FILE}", "--port", str(GATEWAY_PORT)],
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
        "volumeMounts": [{"name": "cumpt", "mountPath": CUMPT_DIR, "readOnly": True}],
    }
    volumes = [{"name": "cumpt", "configMap": {"name": cumpt_name(name)}}]
    extra = {ANNOTATION_CONFIG_HASH: config_hash(cumpt["data"])}
    return _deployment(model, plan, "gateway", gateway_name(name), serving.gateway_replicas, container, volumes,
                       ctx, extra)


def _placement(runtime: RuntimeSpec) -> dict[str, Any]:
    """Where a pod may run and as whom: the runtime's nodeSelector, tolerations, service account."""
    placement: dict[str, Any] = {}
    if runtime.node_selector:
        placement["nodeSelector"] = dict(runtime.node_selector)
    if runtime.tolerations:
        placement["tolerations"] = [dict(t) for t in runtime.tolerations]
    if runtime.service_account_name:
        placement["serviceAccountName"] = runtime.service_account_name
    return placement


def _deployment(model: RelevanceModel, plan: StepPlan, role: str, name: str, replicas: int,
                container: dict[str, Any], volumes: list[dict[str, Any]], ctx: RenderContext,
                pod_annotations: Mapping[str, str]) -> dict[str, Any]:
    owner = model.metadata.name
    lab = labels(owner, step=plan.step.value, key=plan.key, role=role)
    runtime = model.spec.runtime
    container["securityContext"] = CONTAINER_SECURITY
    root_image = role == "engine" and model.spec.serving.engine == "vllm"
    pod_spec: dict[str, Any] = {"securityContext": pod_security(non_root=not root_image), "containers": [container]}
    if volumes:
        pod_spec["volumes"] = volumes
    pod_spec.update(_placement(runtime))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": model.metadata.namespace, "labels": lab},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(owner, role)},
            "template": {"metadata": _pod_meta(owner, lab, ctx, pod_annotations), "spec": pod_spec},
        },
    }


def render_service(model: RelevanceModel, plan: StepPlan, role: str) -> dict[str, Any]:
    owner = model.metadata.name
    name, port = (engine_name(owner), ENGINE_PORT) if role == "engine" else (gateway_name(owner), GATEWAY_PORT)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": model.metadata.namespace,
                     "labels": labels(owner, step=plan.step.value, key=plan.key, role=role)},
        "spec": {
            "selector": selector(owner, role),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def gateway_endpoint(model: RelevanceModel) -> str:
    return f"http://{gateway_name(model.metadata.name)}.{model.metadata.namespace}.svc:{GATEWAY_PORT}"


def engine_endpoint(model: RelevanceModel) -> str:
    return f"http://{engine_name(model.metadata.name)}.{model.metadata.namespace}.svc:{ENGINE_PORT}/v1"


def render_serving(model: RelevanceModel, plan: StepPlan, config: CumPTConfig, ctx: RenderContext | None = None
                   ) -> list[dict[str, Any]]:
    """Everything the serve step rolls out: CumPT ConfigMap, engine and gateway Deployments + Services."""
    cumpt = render_cumpt_configmap(model, plan, config)
    return [
        cumpt,
        render_engine(model, plan, ctx),
        render_service(model, plan, "engine"),
        render_gateway(model, plan, cumpt, ctx),
        render_service(model, plan, "gateway"),
    ]
