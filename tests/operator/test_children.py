import copy
import json
from pathlib import Path

import pytest
import yaml

from relmodel.operator import children as ch
from relmodel.planner import Step, build_pipeline
from relmodel.serving.config import CumPTConfig
from relmodel.spec import parse_manifest

TINY = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "relevancemodel-tiny.yaml").read_text())


def model(**spec):
    raw = copy.deepcopy(TINY)
    raw["spec"].update(spec)
    return parse_manifest(raw)


def plan_of(m, step):
    return next(p for p in build_pipeline(m) if p.step == step)


def test_names_are_dns_safe_and_bounded():
    assert ch.child_name("tiny", "sft", "abc123", "a0") == "tiny-sft-abc123-a0"
    long = ch.child_name("x" * 60, "difficulty", "0123456789ab", "a10")
    assert len(long) <= 63 and long == ch.child_name("x" * 60, "difficulty", "0123456789ab", "a10")
    assert long != ch.child_name("x" * 60, "difficulty", "0123456789ab", "a11")
    assert ch.child_name("Tiny_Model", "sft") == "tiny-model-sft"


def test_job_runs_the_entry_with_params_and_no_retries():
    m = model()
    plan = plan_of(m, Step.SFT)
    job = ch.render_job(m, plan, 2)
    assert job["metadata"]["name"] == f"tiny-sft-{plan.key}-a2"
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    labels = job["metadata"]["labels"]
    assert labels[ch.LABEL_MODEL] == "tiny" and labels[ch.LABEL_STEP] == "sft" and labels[ch.LABEL_KEY] == plan.key
    assert labels[ch.LABEL_ATTEMPT] == "2" and labels["app.kubernetes.io/managed-by"] == "relmodel-operator"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    container = pod["containers"][0]
    assert container["command"] == ["python", "-m", "relmodel.operator.stepwrap", "relmodel.trainers.sft",
                                    "--config", "/config/params.json"]
    assert container["image"] == ch.Images().trainer
    assert pod["volumes"][0] == {"name": "params", "configMap": {"name": f"tiny-sft-{plan.key}"}}


def test_params_configmap_holds_the_planner_params():
    m = model()
    plan = plan_of(m, Step.DPO)
    cm = ch.render_params_configmap(m, plan)
    assert json.loads(cm["data"]["params.json"]) == plan.params


def test_stage_runtime_overrides_and_gpu_resources():
    m = model(
        runtime={"image": "trainer:cpu", "nodeSelector": {"pool": "cpu"}, "tolerations": [{"key": "a"}]},
        stages={"grpo": {"runtime": {"image": "trainer:cuda", "nodeSelector": {"gpu": "h100"},
                                     "resources": {"requests": {"nvidia.com/gpu": "2", "memory": "64Gi"}}}}},
        storage={"uri": "file:///data/runs", "pvc": "runs", "secretName": "s3"},
    )
    grpo = ch.render_job(m, plan_of(m, Step.GRPO), 0)["spec"]["template"]["spec"]
    c = grpo["containers"][0]
    assert c["image"] == "trainer:cuda"
    assert grpo["nodeSelector"] == {"pool": "cpu", "gpu": "h100"}
    assert grpo["tolerations"] == [{"key": "a"}]
    assert c["resources"] == {"requests": {"nvidia.com/gpu": "2", "memory": "64Gi"}, "limits": {"nvidia.com/gpu": "2"}}
    assert {"name": "storage", "persistentVolumeClaim": {"claimName": "runs"}} in grpo["volumes"]
    assert {"name": "storage", "mountPath": "/data/runs"} in c["volumeMounts"]
    assert c["envFrom"] == [{"secretRef": {"name": "s3"}}]
    data = ch.render_task(m, plan_of(m, Step.DATA), 0)["spec"]["template"]["spec"]
    assert data["containers"][0]["image"] == "trainer:cpu" and data["nodeSelector"] == {"pool": "cpu"}


def test_pod_annotations_from_context():
    m = model()
    ctx = ch.RenderContext(pod_annotations={"sidecar.istio.io/inject": "false"})
    job = ch.render_job(m, plan_of(m, Step.DATA), 0, ctx)
    assert job["spec"]["template"]["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}


CONFIG = CumPTConfig(model="tiny", beta=0.55, grade_token_ids=(16, 17, 18, 19))


@pytest.mark.parametrize("engine", ["cpu", "vllm"])
def test_serving_objects(engine):
    m = model(serving={"engine": engine, "quantization": "fp8"} if engine == "vllm" else {"engine": "cpu"})
    plan = plan_of(m, Step.SERVE)
    objs = ch.render_serving(m, plan, CONFIG)
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ConfigMap", "tiny-cumpt"), ("Deployment", "tiny-engine"), ("Service", "tiny-engine"),
        ("Deployment", "tiny-gateway"), ("Service", "tiny-gateway")]
    cumpt, engine_dep, _, gateway, gateway_svc = objs
    assert json.loads(cumpt["data"]["cumpt.json"])["beta"] == 0.55
    c = engine_dep["spec"]["template"]["spec"]["containers"][0]
    if engine == "cpu":
        assert c["command"] == ["relmodel"] and c["args"][:3] == ["serve-engine", "--model", plan.params["model"]
                                                                   .removeprefix("file://")]
        assert "resources" not in c
    else:
        assert c["command"] == ["vllm"] and c["args"][0] == "serve" and c["image"] == "vllm/vllm-openai:v0.33.0"
        assert "--enable-prefix-caching" in c["args"] and c["args"][-2:] == ["--quantization", "fp8"]
        assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert "runAsNonRoot" not in engine_dep["spec"]["template"]["spec"]["securityContext"]
    assert gateway["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    g = gateway["spec"]["template"]
    assert g["spec"]["containers"][0]["args"][0] == "gateway"
    assert g["metadata"]["annotations"][ch.ANNOTATION_CONFIG_HASH] == ch.config_hash(cumpt["data"])
    assert gateway_svc["spec"]["selector"] == gateway["spec"]["selector"]["matchLabels"]
    for o in objs:
        assert o["metadata"]["labels"][ch.LABEL_KEY] == plan.key


def test_a_new_beta_rolls_the_gateway():
    m = model()
    plan = plan_of(m, Step.SERVE)
    a = ch.render_serving(m, plan, CONFIG)[3]
    b = ch.render_serving(m, plan, CONFIG.model_copy(update={"beta": 0.6}))[3]
    def stamp(d):
        return d["spec"]["template"]["metadata"]["annotations"][ch.ANNOTATION_CONFIG_HASH]

    assert stamp(a) != stamp(b)
