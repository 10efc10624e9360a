"""The operator on a real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok).

What is real: the CRD (schema, CEL, strict field validation, printer columns, status subresource), the
operator process (`python -m relmodel.operator`, killed and restarted at will), its Jobs, Deployments,
Services and ConfigMaps, the Job controller, kwok's pod lifecycle and the garbage collector.

What is simulated, and how: no container runs on kwok's fake node, so the test plays the step's
*work*. It watches Jobs like a kubelet would run them and, for each new Job, writes the step's
result.json (metrics last, as steps.py does) into the storage root, a tmp dir the operator reads
through the same file:// URI; kwok then marks the pod Succeeded (or Failed, for pods annotated
`relmodel.testing/pod-fail`). The operator decides everything else: which Job to create when, reading
only the Job status and result.json. A Job that succeeds without a result fails (after a grace
period), so the sequencing below cannot pass by accident.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.operator_harness import (
    STEP_ORDER,
    Operator,
    Timeline,
    Trainer,
    condition,
    default_metrics,
    jobs_by_step,
    kget,
    kubectl,
    manifest,
)

from relmodel.operator.children import ANNOTATION_POD_ANNOTATIONS, LABEL_MODEL, LABEL_STEP
from relmodel.planner import build_pipeline
from relmodel.spec import parse_manifest
from relmodel.testing.controlplane import POD_FAIL_ANNOTATION
from relmodel.testing.waiting import wait_for

pytestmark = pytest.mark.e2e


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def operator(ns: str, tmp_path: Path) -> Iterator[Operator]:
    op = Operator(ns, tmp_path)
    op.start()
    yield op
    op.stop()
    assert "Traceback" not in op.logs(), op.logs()[-4000:]


@pytest.fixture
def trainer(ns: str) -> Iterator[Trainer]:
    worker = Trainer(ns, default_metrics)
    worker.start()
    yield worker
    worker.stop_event.set()
    worker.join(5)


# --- tests ---------------------------------------------------------------------------------------


def test_pipeline_runs_in_order_serves_and_cleans_up(ns: str, operator: Operator, trainer: Trainer,
                                                     tmp_path: Path) -> None:
    t0 = time.monotonic()
    kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest("tiny", ns, tmp_path / "store")))
    timeline = Timeline(ns, "tiny")
    obj = timeline.until("Ready=True", lambda o: condition(o, "Ready").get("status") == "True", timeout=180)
    ready_s = time.monotonic() - t0
    print(f"\ncondition timeline (apply -> Ready in {ready_s:.1f}s):\n{timeline.render()}")

    # Jobs appeared one at a time, in stage order; each only after the previous one completed.
    jobs = [trainer.seen[n] for n in trainer.order]
    assert [j["metadata"]["labels"][LABEL_STEP] for j in jobs] == STEP_ORDER
    finished = {j["metadata"]["name"]: j for j in kget("jobs", "-n", ns)["items"]}
    for before, after in itertools.pairwise(jobs):
        done = finished[before["metadata"]["name"]]["status"]["completionTime"]
        assert after["metadata"]["creationTimestamp"] >= done, (before["metadata"]["name"], after["metadata"]["name"])
    # ... with the planner's step+key names, the params ConfigMap and the trainer command.
    plan = {p.step.value: p for p in build_pipeline(parse_manifest(manifest("tiny", ns, tmp_path / "store")))}
    sft = finished[next(n for n in trainer.order if "-sft-" in n)]
    container = sft["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-3:] == ["relmodel.trainers.sft", "--config", "/config/params.json"]
    assert sft["metadata"]["name"] == f"tiny-sft-{plan['sft'].key}-a0"
    assert sft["spec"]["backoffLimit"] == 0
    params = kget("configmap", f"tiny-sft-{plan['sft'].key}", "-n", ns)
    assert json.loads(params["data"]["params.json"])["output"] == plan["sft"].output

    # Status as users read it.
    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["phase"] == "Ready" and status["macroF1"] == pytest.approx(0.61)
    assert status["stages"]["eval"]["metrics"]["macro_f1"] == pytest.approx(0.61)
    assert status["stages"]["sft"]["phase"] == "Succeeded" and status["stages"]["sft"]["output"] == plan["sft"].output
    assert status["serving"]["endpoint"] == f"http://tiny-gateway.{ns}.svc:8080"
    assert status["serving"]["beta"] == pytest.approx(0.55)
    assert {c["type"] for c in status["conditions"]} >= {"DataReady", "SFTSucceeded", "DPOSucceeded",
                                                         "GRPOSucceeded", "EvalPassed", "ServingReady", "Ready"}
    # Serving children exist and are Available.
    for kind, name in [("deployment", "tiny-engine"), ("deployment", "tiny-gateway"), ("service", "tiny-engine"),
                       ("service", "tiny-gateway"), ("configmap", "tiny-cumpt")]:
        kget(kind, name, "-n", ns)
    cumpt = json.loads(kget("configmap", "tiny-cumpt", "-n", ns)["data"]["cumpt.json"])
    assert cumpt["beta"] == pytest.approx(0.55) and cumpt["grade_token_ids"] == [16, 17, 18, 19]
    engine = kget("deployment", "tiny-engine", "-n", ns)["spec"]["template"]["spec"]["containers"][0]
    assert engine["command"] == ["relmodel"] and engine["args"][0] == "serve-engine"
    printed = kubectl("get", "relm", "tiny", "-n", ns).stdout
    print(printed)
    assert "Ready" in printed and "True" in printed and "0.61" in printed
    described = kubectl("describe", "relm", "tiny", "-n", ns).stdout
    assert "JobCreated" in described and "ServingReady" in described

    # Level-based: a deleted child comes back without any spec change.
    kubectl("delete", "deployment", "tiny-gateway", "-n", ns)
    wait_for("the gateway to be recreated", lambda: kubectl("get", "deployment", "tiny-gateway", "-n", ns,
                                                            check=False).returncode == 0, timeout=30)

    # Nothing re-ran: still exactly one Job per step.
    assert all(len(v) == 1 for v in jobs_by_step(ns, "tiny").values())

    # Delete: owner references take every child with it, and no finalizer holds the object.
    assert not kget("relm", "tiny", "-n", ns)["metadata"].get("finalizers")
    t1 = time.monotonic()
    kubectl("delete", "relm", "tiny", "-n", ns, "--timeout=30s")

    def gone() -> bool:
        left = [kubectl("get", kind, "-n", ns, "-l", f"{LABEL_MODEL}=tiny", "-o", "name").stdout.strip()
                for kind in ("jobs", "deployments", "services", "configmaps")]
        return not any(left)
    wait_for("children to be garbage-collected", gone, timeout=60)
    print(f"delete -> children gone in {time.monotonic() - t1:.1f}s")
    assert operator.alive()


def test_operator_killed_mid_stage_creates_exactly_one_job_per_step(ns: str, operator: Operator, trainer: Trainer,
                                                                   tmp_path: Path) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest("restarts", ns, tmp_path / "store")))
    timeline = Timeline(ns, "restarts")
    kills = 0
    def at_step(step: str) -> Callable[[dict[str, Any]], bool]:
        return lambda o: (o.get("status") or {}).get("currentStep") == step or condition(o, "Ready").get(
            "status") == "True"

    for step in ("data", "cot", "sft", "dpo", "grpo", "eval"):
        timeline.until(f"step {step}", at_step(step), timeout=120)
        operator.kill()
        kills += 1
        time.sleep(0.5)
        operator.start()
    timeline.until("Ready=True", lambda o: condition(o, "Ready").get("status") == "True", timeout=180)
    print(f"\nkilled (SIGKILL) and restarted the operator {kills} times; timeline:\n{timeline.render()}")
    per_step = jobs_by_step(ns, "restarts")
    assert sorted(per_step) == sorted(STEP_ORDER)
    assert all(len(names) == 1 for names in per_step.values()), per_step


def test_failing_job_retries_with_backoff_then_fails_and_a_fixed_spec_recovers(
        ns: str, operator: Operator, trainer: Trainer, tmp_path: Path) -> None:
    raw = manifest("flaky", ns, tmp_path / "store")
    raw["metadata"]["annotations"] = {ANNOTATION_POD_ANNOTATIONS: json.dumps({POD_FAIL_ANNOTATION: "true"})}
    kubectl("apply", "-f", "-", input=yaml.safe_dump(raw))
    timeline = Timeline(ns, "flaky")
    obj = timeline.until("phase Failed", lambda o: (o.get("status") or {}).get("phase") == "Failed", timeout=120)
    print(f"\nfailing data step, retries limit 2, backoff 1s:\n{timeline.render()}")
    data_jobs = sorted(jobs_by_step(ns, "flaky")["data"])
    assert [n.rsplit("-", 1)[1] for n in data_jobs] == ["a0", "a1", "a2"]  # 1 try + 2 retries, kept
    created = {j["metadata"]["name"]: j for j in kget("jobs", "-n", ns)["items"]}
    failed_at = [created[n]["status"]["conditions"][-1]["lastTransitionTime"] for n in data_jobs]
    started = [created[n]["metadata"]["creationTimestamp"] for n in data_jobs]
    assert started[1] > failed_at[0] and started[2] > failed_at[1]  # each retry after its backoff
    ready, data_ready = condition(obj, "Ready"), condition(obj, "DataReady")
    assert data_ready["status"] == "False" and data_ready["reason"] == "Failed"
    assert "exit code 1" in data_ready["message"] or "BackoffLimitExceeded" in data_ready["message"]
    assert "failed after 3 attempts" in obj["status"]["message"]
    assert ready["status"] == "False"
    described = kubectl("describe", "relm", "flaky", "-n", ns).stdout
    assert "Warning" in described and "Failed" in described
    assert len(data_jobs) == 3 and "cot" not in jobs_by_step(ns, "flaky")

    # Fix: drop the failure and change the data spec (a new key): the pipeline runs to Ready.
    raw["metadata"]["annotations"] = {}
    raw["spec"]["datasets"]["synthetic"]["seed"] = 8
    kubectl("apply", "-f", "-", input=yaml.safe_dump(raw))
    kubectl("annotate", "relm", "flaky", "-n", ns, f"{ANNOTATION_POD_ANNOTATIONS}-")
    obj = timeline.until("Ready=True after the fix",
                         lambda o: condition(o, "Ready").get("status") == "True", timeout=180)
    print(f"after the fix:\n{timeline.render()}")
    assert obj["status"]["observedGeneration"] == 2
    assert len(jobs_by_step(ns, "flaky")["data"]) == 4  # 3 failed of the old key + 1 of the new


BAD: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("missing base model", lambda s: s.pop("baseModel"), 'spec.baseModel: Required value'),
    ("empty base model", lambda s: s.update(baseModel={}), "baseModel needs exactly one of tiny, path, hub, gguf"),
    ("two base-model sources", lambda s: s.update(baseModel={"tiny": {}, "path": "/models/x"}),
     "baseModel needs exactly one of tiny, path, hub, gguf"),
    ("unknown stage", lambda s: s["stages"].update(ppo={}), 'unknown field "spec.stages.ppo"'),
    ("unknown top-level field", lambda s: s.update(trainer="x"), 'unknown field "spec.trainer"'),
    ("negative group size", lambda s: s["stages"]["grpo"].update(groupSize=-4),
     "spec.stages.grpo.groupSize: Invalid value: -4: spec.stages.grpo.groupSize in body should be greater than or "
     "equal to 2"),
    ("band lower >= upper", lambda s: s["stages"]["grpo"].update(band={"lower": 0.5, "upper": 0.2}),
     "band needs lower < upper"),
    ("band lower below 0", lambda s: s["stages"]["grpo"].update(band={"lower": -0.1, "upper": 0.9}),
     "spec.stages.grpo.band.lower in body should be greater than or equal to 0"),
    ("band upper above 1", lambda s: s["stages"]["grpo"].update(band={"lower": 0.1, "upper": 1.5}),
     "spec.stages.grpo.band.upper in body should be less than or equal to 1"),
    ("serving beta above 1", lambda s: s["serving"].update(beta=1.5),
     "spec.serving.beta in body should be less than or equal to 1"),
    ("dpo beta zero", lambda s: s["stages"]["dpo"].update(beta=0), "spec.stages.dpo.beta in body should be greater "
     "than 0"),
    ("epochs as a word", lambda s: s["stages"]["sft"]["training"].update(epochs="three"),
     'spec.stages.sft.training.epochs: Invalid value: "string": spec.stages.sft.training.epochs in body must be of '
     "type number"),
    ("replicas as a string", lambda s: s["serving"].update(replicas="two"), "spec.serving.replicas in body must be "
     "of type integer"),
    ("unknown engine", lambda s: s["serving"].update(engine="tgi"), 'spec.serving.engine: Unsupported value: "tgi"'),
    ("openai teacher without endpoint", lambda s: s["cot"].update(teacher={"kind": "openai"}),
     "an openai teacher needs endpoint and model"),
    ("synthetic and files", lambda s: s.update(datasets={"synthetic": {}, "train": "file:///x", "eval": "file:///y"}),
     "synthetic excludes train/eval"),
    ("train without eval", lambda s: s.update(datasets={"train": "file:///x.jsonl"}),
     "datasets needs either synthetic or both train and eval"),
    ("beta grid start > stop", lambda s: s["evaluation"].update(betaGrid={"start": 0.8, "stop": 0.3}),
     "betaGrid needs start <= stop"),
    ("negative retry limit", lambda s: s.update(retries={"limit": -1}),
     "spec.retries.limit in body should be greater than or equal to 0"),
    ("gate above 1", lambda s: s.update(gates={"minMacroF1": 2}),
     "spec.gates.minMacroF1 in body should be less than or equal to 1"),
]


def test_bad_manifests_are_refused_with_clear_messages(ns: str, operator: Operator, tmp_path: Path) -> None:
    outputs = []
    for i, (what, mutate, expected) in enumerate(BAD):
        raw = manifest(f"bad-{i}", ns, tmp_path)
        mutate(raw["spec"])
        result = kubectl("apply", "-f", "-", input=yaml.safe_dump(raw), check=False)
        outputs.append(f"  {what}: {result.stderr.strip()}")
        assert result.returncode != 0, f"{what}: accepted"
        assert expected in result.stderr, f"{what}: {result.stderr}"
    bad_name = manifest("Bad_Name", ns, tmp_path)
    result = kubectl("apply", "-f", "-", input=yaml.safe_dump(bad_name), check=False)
    assert result.returncode != 0 and "Bad_Name" in result.stderr
    print("\nrefused by the API server:\n" + "\n".join(outputs))
    assert kget("relm", "-n", ns)["items"] == []
    # A value only the models can judge (CEL cannot see untyped fields) is reported, not crashed on.
    raw = manifest("lora-bad", ns, tmp_path)
    raw["spec"]["stages"]["sft"]["training"]["lora"] = {"targetModules": 5}
    kubectl("apply", "-f", "-", input=yaml.safe_dump(raw))
    obj = wait_for("phase Invalid", lambda: (kget("relm", "lora-bad", "-n", ns).get("status") or {}).get(
        "phase") == "Invalid" and kget("relm", "lora-bad", "-n", ns), timeout=30)
    assert "targetModules" in obj["status"]["message"]
    assert condition(obj, "Ready")["reason"] == "InvalidSpec"
    time.sleep(3)
    assert operator.alive()


def test_gate_failure_stops_before_rollout(ns: str, operator: Operator, trainer: Trainer, tmp_path: Path) -> None:
    raw = manifest("gated", ns, tmp_path / "store", gates={"minMacroF1": 0.9})
    kubectl("apply", "-f", "-", input=yaml.safe_dump(raw))
    timeline = Timeline(ns, "gated")
    obj = timeline.until("phase GateFailed", lambda o: (o.get("status") or {}).get("phase") == "GateFailed",
                         timeout=120)
    print(f"\ngate minMacroF1=0.9, eval macro-F1 0.61:\n{timeline.render()}")
    gate = condition(obj, "EvalPassed")
    assert gate["status"] == "False" and gate["reason"] == "GateFailed"
    assert gate["message"] == "macro-F1 0.6100 is below the gate's minimum 0.9000"
    time.sleep(3)  # a few resyncs: still nothing rolled out
    assert kubectl("get", "deployments,services", "-n", ns, "-l", f"{LABEL_MODEL}=gated", "-o", "name").stdout == ""
    assert "GateFailed" in kubectl("describe", "relm", "gated", "-n", ns).stdout
