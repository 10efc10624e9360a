import copy
import json
from pathlib import Path

import yaml

from relmodel.operator import children as ch
from relmodel.operator.observe import next_attempt, observe_run, observe_serving, observe_step, parse_time
from relmodel.operator.status import ConditionStatus, merge_conditions
from relmodel.operator.stepwrap import termination_message
from relmodel.planner import Phase, Step, build_pipeline
from relmodel.spec import parse_manifest
from relmodel.tasks.service.models import Counts, Progress, RunState, RunStatus

TINY = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "relevancemodel-tiny.yaml").read_text())
MODEL = parse_manifest(copy.deepcopy(TINY))
SFT = next(p for p in build_pipeline(MODEL) if p.step == Step.SFT)
SERVE = next(p for p in build_pipeline(MODEL) if p.step == Step.SERVE)
NOW = parse_time("2026-01-01T00:10:00Z") or 0.0


def job(attempt, state=None, at="2026-01-01T00:05:00Z", plan=SFT):
    j = ch.render_job(MODEL, plan, attempt)
    conditions = [{"type": state, "status": "True", "reason": "BackoffLimitExceeded" if state == "Failed" else "",
                   "message": "Job has reached the specified backoff limit", "lastTransitionTime": at}] if state else []
    j["status"] = {"conditions": conditions, "startTime": "2026-01-01T00:00:00Z"}
    if state == "Complete":
        j["status"]["completionTime"] = at
    return j


def pod(of, exit_code, message=""):
    return {"metadata": {"labels": {"batch.kubernetes.io/job-name": of["metadata"]["name"]}},
            "status": {"containerStatuses": [{"state": {"terminated": {"exitCode": exit_code, "message": message,
                                                                       "reason": "Error" if exit_code else ""}}}]}}


def no_result(_):
    return None


def test_no_job_is_no_observation():
    assert observe_step(SFT, [], [], no_result, NOW, 60) is None
    assert next_attempt(SFT, []) == 0


def test_running_then_succeeded_with_metrics_from_the_termination_message():
    running = observe_step(SFT, [job(0)], [], no_result, NOW, 60)
    assert running is not None and running.observation.phase == Phase.RUNNING
    done = job(0, "Complete")
    state = observe_step(SFT, [done], [pod(done, 0, json.dumps({"loss": 0.25}))], no_result, NOW, 60)
    assert state is not None and state.observation.phase == Phase.SUCCEEDED
    assert state.observation.metrics == {"loss": 0.25}


def test_metrics_from_storage_when_no_termination_message():
    state = observe_step(SFT, [job(0, "Complete")], [], lambda out: {"loss": 1.0} if out == SFT.output else None,
                         NOW, 60)
    assert state is not None and state.observation.metrics == {"loss": 1.0}


def test_success_without_result_waits_then_fails():
    recent = observe_step(SFT, [job(0, "Complete", at="2026-01-01T00:09:50Z")], [], no_result, NOW, 60)
    assert recent is not None and recent.observation.phase == Phase.RUNNING
    old = observe_step(SFT, [job(0, "Complete", at="2026-01-01T00:05:00Z")], [], no_result, NOW, 60)
    assert old is not None and old.observation.phase == Phase.FAILED and "no result" in old.observation.message


def test_failed_attempts_are_counted_and_kept():
    a0, a1 = job(0, "Failed", at="2026-01-01T00:01:00Z"), job(1, "Failed", at="2026-01-01T00:03:00Z")
    state = observe_step(SFT, [a1, a0], [pod(a1, 1, "CUDA out of memory")], no_result, NOW, 60)
    assert state is not None
    obs = state.observation
    assert obs.phase == Phase.FAILED and obs.attempts == 2 and obs.failed_at == parse_time("2026-01-01T00:03:00Z")
    assert "BackoffLimitExceeded" in obs.message and "exit code 1" in obs.message
    assert "CUDA out of memory" in obs.message
    assert state.job == a1["metadata"]["name"]
    assert next_attempt(SFT, [a0, a1]) == 2
    retry = observe_step(SFT, [a0, a1, job(2)], [], no_result, NOW, 60)
    assert retry is not None and retry.observation.phase == Phase.RUNNING and retry.observation.attempts == 2


def test_exit_code_2_is_a_permanent_failure():
    failed = job(0, "Failed")
    state = observe_step(SFT, [failed], [pod(failed, 2, "error: train.jsonl:3: missing field 'title'")], no_result,
                         NOW, 60)
    assert state is not None and state.observation.permanent and "missing field" in state.observation.message
    crashed = observe_step(SFT, [failed], [pod(failed, 137, "OOMKilled")], no_result, NOW, 60)
    assert crashed is not None and not crashed.observation.permanent


def test_jobs_of_another_key_are_ignored():
    other = job(0, "Complete")
    other["metadata"]["labels"][ch.LABEL_KEY] = "000000000000"
    assert observe_step(SFT, [other], [], no_result, NOW, 60) is None


def available(dep):
    dep["metadata"]["generation"] = 1
    dep["status"] = {"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1,
                     "conditions": [{"type": "Available", "status": "True"}]}
    return dep


def test_serving_observation():
    from relmodel.serving.config import CumPTConfig

    objs = ch.render_serving(MODEL, SERVE, CumPTConfig(model="tiny", grade_token_ids=(1, 2, 3, 4)))
    cm, engine, esvc, gateway, gsvc = objs
    assert observe_serving(SERVE, [], [], []) is None
    pending = observe_serving(SERVE, [engine], [cm], [esvc, gsvc])
    assert pending is not None and pending.observation.phase == Phase.PENDING
    running = observe_serving(SERVE, [engine, gateway], [cm], [esvc, gsvc])
    assert running is not None and running.observation.phase == Phase.RUNNING
    ready = observe_serving(SERVE, [available(engine), available(gateway)], [cm], [esvc, gsvc])
    assert ready is not None and ready.observation.phase == Phase.SUCCEEDED


def test_last_transition_time_kept_while_status_unchanged():
    before = [{"type": "Ready", "status": "False", "lastTransitionTime": "T0"},
              {"type": "DataReady", "status": "Unknown", "lastTransitionTime": "T0"}]
    now = [ConditionStatus(type="Ready", status="False", reason="InProgress"),
           ConditionStatus(type="DataReady", status="True", reason="Succeeded")]
    merged = {c.type: c.last_transition_time for c in merge_conditions(before, now, "T1")}
    assert merged == {"Ready": "T0", "DataReady": "T1"}


def test_termination_message_fits():
    small = {"loss": 0.5}
    assert json.loads(termination_message(small)) == small
    big = {"macro_f1": 0.7, "table": ["x" * 100] * 100}
    msg = termination_message(big)
    assert len(msg.encode()) <= 4096 and json.loads(msg) == {"macro_f1": 0.7, "truncated": True}


# --- task steps run by the data-run service ---------------------------------------------------------

COT = next(p for p in build_pipeline(MODEL) if p.step == Step.COT)


def run(state, attempts=1, **fields):
    request = ch.render_run_request(COT)
    return RunStatus(id=request.run_id(), kind="cot", state=state, input=request.params["train"],
                     output=request.params["output"], params=request.params, attempts=attempts,
                     created_at=NOW - 60, started_at=NOW - 50 if attempts else None, updated_at=NOW, **fields)


def test_a_step_without_a_run_is_not_observed():
    assert observe_run(COT, None) is None


def test_the_run_id_follows_from_the_step_so_a_restarted_operator_finds_its_run():
    first, again = ch.render_run_request(COT), ch.render_run_request(COT)
    assert first.run_id() == again.run_id() and first.kind == "cot" and first.params == dict(COT.params)
    changed = parse_manifest({**copy.deepcopy(TINY), "spec": {**copy.deepcopy(TINY)["spec"],
                                                                "cot": {"topK": 2}}})
    other = next(p for p in build_pipeline(changed) if p.step == Step.COT)
    assert ch.render_run_request(other).run_id() != first.run_id()


def test_a_queued_or_running_run_is_running_with_its_progress():
    queued = observe_run(COT, run(RunState.QUEUED, attempts=0))
    assert queued is not None and queued.observation.phase == Phase.RUNNING and queued.observation.attempts == 0
    going = observe_run(COT, run(RunState.RUNNING, attempts=2, progress=Progress(shards_done=3, shards_total=8),
                                 counts=Counts(rows=120, rejected=4)))
    assert going is not None and going.run == run(RunState.RUNNING).id
    assert going.observation.phase == Phase.RUNNING and going.observation.attempts == 1  # one failed before
    assert "3/8 shards, 120 rows, 4 rejected" in going.observation.message


def test_a_succeeded_run_carries_the_step_result_as_metrics():
    state = observe_run(COT, run(RunState.SUCCEEDED, result={"accepted": 40, "rejected": 2},
                                 finished_at=NOW - 5))
    assert state is not None and state.observation.phase == Phase.SUCCEEDED
    assert state.observation.metrics == {"accepted": 40, "rejected": 2} and state.observation.attempts == 0
    assert state.completion_time == "2026-01-01T00:09:55Z"


def test_a_failed_run_counts_every_start_and_says_whether_a_retry_can_help():
    bad_input = observe_run(COT, run(RunState.FAILED, attempts=2, error="train.jsonl line 3: missing field",
                                     permanent=True, finished_at=NOW - 5))
    assert bad_input is not None and bad_input.observation.phase == Phase.FAILED
    assert bad_input.observation.attempts == 2 and bad_input.observation.permanent
    assert bad_input.observation.failed_at == NOW - 5
    assert "train.jsonl line 3: missing field" in bad_input.observation.message
    crashed = observe_run(COT, run(RunState.FAILED, error="lost the broker", finished_at=NOW - 5))
    assert crashed is not None and not crashed.observation.permanent
