"""Observed state: Jobs, pods, Deployments (plain dicts) and data runs -> the planner's Observations. Pure.

A step's Jobs are found by the labels relmodel.dev/step + relmodel.dev/key (+ attempt). The latest
attempt decides the phase; every Failed attempt counts. A succeeded Job's metrics come from its pod's
termination message (written by relmodel.operator.stepwrap) or else from result.json in storage.
A task step the data-run service runs is observed through its run (`observe_run`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from relmodel.operator.children import LABEL_ATTEMPT, LABEL_KEY, LABEL_ROLE, LABEL_STEP
from relmodel.planner import Observation, Phase, Step, StepPlan
from relmodel.steps import EXIT_PERMANENT
from relmodel.tasks.service.models import RunState, RunStatus

ResultReader = Callable[[str], Mapping[str, Any] | None]
Obj = Mapping[str, Any]


@dataclass(frozen=True)
class StepState:
    """An Observation plus what status shows about the step's Jobs."""

    observation: Observation
    job: str | None = None
    run: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def format_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _labels(obj: Obj) -> Mapping[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def _condition(obj: Obj, ctype: str) -> Mapping[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == ctype and cond.get("status") == "True":
            return cond
    return None


def job_attempt(job: Obj) -> int:
    try:
        return int(_labels(job).get(LABEL_ATTEMPT, "0"))
    except ValueError:
        return 0


def job_phase(job: Obj) -> Phase:
    if _condition(job, "Complete") is not None:
        return Phase.SUCCEEDED
    if _condition(job, "Failed") is not None:
        return Phase.FAILED
    return Phase.RUNNING


def pods_of(job: Obj, pods: Sequence[Obj]) -> list[Obj]:
    name = job["metadata"]["name"]
    return [p for p in pods if _labels(p).get("batch.kubernetes.io/job-name", _labels(p).get("job-name")) == name]


def terminated(pod: Obj) -> Mapping[str, Any] | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        state = (status.get("state") or {}).get("terminated")
        if state:
            return state
    return None


def failure_message(job: Obj, pods: Sequence[Obj]) -> str:
    """Why a Job failed: the Job's condition plus the pod's exit code, reason and message."""
    cond = _condition(job, "Failed") or {}
    parts = [f"Job {job['metadata']['name']} failed ({cond.get('reason', 'Failed')}: {cond.get('message', '')})"]
    for pod in pods_of(job, pods):
        term = terminated(pod)
        if term:
            detail = f"exit code {term.get('exitCode')}"
            if term.get("reason"):
                detail += f", {term['reason']}"
            if term.get("message"):
                detail += f": {str(term['message']).strip()[-300:]}"
            parts.append(detail)
        elif pod.get("status", {}).get("reason"):
            parts.append(f"pod {pod.get('status', {}).get('reason')}: {pod.get('status', {}).get('message', '')}")
    return "; ".join(parts)


def result_from_pods(job: Obj, pods: Sequence[Obj]) -> Mapping[str, Any] | None:
    """The step result the container left in its termination message (stepwrap), if any."""
    for pod in pods_of(job, pods):
        term = terminated(pod)
        message = (term or {}).get("message")
        if term and term.get("exitCode") == 0 and message:
            try:
                value = json.loads(message)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


@dataclass(frozen=True)
class _Outcome:
    phase: Phase
    at: float | None = None
    message: str = ""
    result: Mapping[str, Any] | None = None
    permanent: bool = False


def _outcome(job: Obj, pods: Sequence[Obj], output: str, read_result: ResultReader, now: float,
             result_grace: float) -> _Outcome:
    """One Job's outcome; a Job that succeeded without reporting a result fails after a grace period."""
    phase = job_phase(job)
    name = job["metadata"]["name"]
    if phase == Phase.FAILED:
        cond = _condition(job, "Failed") or {}
        permanent = any((terminated(pod) or {}).get("exitCode") == EXIT_PERMANENT for pod in pods_of(job, pods))
        return _Outcome(Phase.FAILED, parse_time(cond.get("lastTransitionTime")) or now, failure_message(job, pods),
                        permanent=permanent)
    if phase == Phase.RUNNING:
        return _Outcome(Phase.RUNNING)
    result = result_from_pods(job, pods)
    if result is None:
        result = read_result(output)
    if result is not None:
        return _Outcome(Phase.SUCCEEDED, result=result)
    done_at = parse_time(job.get("status", {}).get("completionTime")) or now
    if now - done_at < result_grace:
        return _Outcome(Phase.RUNNING, message=f"Job {name} succeeded; waiting for its result")
    return _Outcome(Phase.FAILED, done_at, f"Job {name} succeeded but reported no result (termination "
                                           f"message or {output}/result.json)")


def step_jobs(plan: StepPlan, jobs: Sequence[Obj]) -> list[Obj]:
    """The Jobs of the step's current key, by attempt."""
    return sorted(
        (j for j in jobs if _labels(j).get(LABEL_STEP) == plan.step.value and _labels(j).get(LABEL_KEY) == plan.key),
        key=job_attempt,
    )


def next_attempt(plan: StepPlan, jobs: Sequence[Obj]) -> int:
    """The attempt number of the step's next Job: one past the highest that exists."""
    mine = step_jobs(plan, jobs)
    return job_attempt(mine[-1]) + 1 if mine else 0


def observe_step(plan: StepPlan, jobs: Sequence[Obj], pods: Sequence[Obj], read_result: ResultReader,
                 now: float, result_grace: float) -> StepState | None:
    """The step's state for its current key, or None when no Job exists for it yet."""
    mine = step_jobs(plan, jobs)
    if not mine:
        return None
    outcomes = [_outcome(j, pods, plan.output, read_result, now, result_grace) for j in mine]
    failed = [o for o in outcomes if o.phase == Phase.FAILED]
    latest, last = mine[-1], outcomes[-1]
    status = latest.get("status", {})
    start, completion = status.get("startTime"), status.get("completionTime")
    if completion is None and last.phase == Phase.FAILED:
        completion = (_condition(latest, "Failed") or {}).get("lastTransitionTime")
    failed_at = failed[-1].at if failed else None
    message = last.message or (failed[-1].message if failed else "")
    obs = Observation(last.phase, plan.key, len(failed), failed_at, message, dict(last.result or {}),
                      permanent=last.permanent)
    return StepState(obs, latest["metadata"]["name"], start, completion)


def observe_run(plan: StepPlan, run: RunStatus | None) -> StepState | None:
    """A task step run by the data-run service, from its run; None when there is no run yet.

    `attempts` counts the run's starts; the failed ones are all of them unless one is under way.
    """
    if run is None:
        return None
    under_way = run.state in (RunState.RUNNING, RunState.SUCCEEDED)
    failures = max(0, run.attempts - 1) if under_way else run.attempts
    started = format_time(run.started_at) if run.started_at else None
    finished = format_time(run.finished_at) if run.finished_at else None
    if run.state == RunState.SUCCEEDED:
        obs = Observation(Phase.SUCCEEDED, plan.key, failures, metrics=dict(run.result or {}))
    elif run.state == RunState.FAILED:
        obs = Observation(Phase.FAILED, plan.key, failures, run.finished_at or run.updated_at,
                          f"data run {run.id} failed: {run.error}", permanent=run.permanent)
    else:
        progress, counts = run.progress, run.counts
        obs = Observation(Phase.RUNNING, plan.key, failures, message=(
            f"data run {run.id} {run.state.value}: {progress.shards_done}/{progress.shards_total} shards, "
            f"{counts.rows} rows, {counts.rejected} rejected"))
    return StepState(obs, run=run.id, start_time=started, completion_time=finished)


def deployment_available(deployment: Obj) -> bool:
    """Available, rolled out to its latest generation, all replicas updated."""
    meta, spec, status = deployment.get("metadata", {}), deployment.get("spec", {}), deployment.get("status", {})
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return False
    want = spec.get("replicas", 1)
    if want == 0:
        return True
    return (_condition(deployment, "Available") is not None
            and status.get("updatedReplicas", 0) >= want and status.get("availableReplicas", 0) >= want)


def observe_serving(plan: StepPlan, deployments: Sequence[Obj], configmaps: Sequence[Obj],
                    services: Sequence[Obj]) -> StepState | None:
    """The serve step: Succeeded when the engine and gateway of this key are Available."""
    def of_key(objs: Sequence[Obj], role: str) -> Obj | None:
        return next((o for o in objs if _labels(o).get(LABEL_ROLE) == role
                     and _labels(o).get(LABEL_KEY) == plan.key), None)

    engine, gateway = of_key(deployments, "engine"), of_key(deployments, "gateway")
    cumpt = of_key(configmaps, "cumpt")
    svc = [of_key(services, "engine"), of_key(services, "gateway")]
    if engine is None and gateway is None and cumpt is None:
        return None
    if engine is None or gateway is None or cumpt is None or None in svc:
        return StepState(Observation(Phase.PENDING, plan.key, message="serving objects incomplete"))
    for dep in (engine, gateway):
        cond = next((c for c in dep.get("status", {}).get("conditions") or []
                     if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"), None)
        if cond is not None:
            return StepState(Observation(Phase.FAILED, plan.key, 1, parse_time(cond.get("lastTransitionTime")),
                                         f"Deployment {dep['metadata']['name']}: {cond.get('message', '')}"))
    if deployment_available(engine) and deployment_available(gateway):
        return StepState(Observation(Phase.SUCCEEDED, plan.key), None,
                         engine.get("metadata", {}).get("creationTimestamp"))
    waiting = [d["metadata"]["name"] for d in (engine, gateway) if not deployment_available(d)]
    return StepState(Observation(Phase.RUNNING, plan.key, message=f"waiting for {', '.join(waiting)} to be Available"))


def observe_all(pipeline: Sequence[StepPlan], jobs: Sequence[Obj], pods: Sequence[Obj],
                deployments: Sequence[Obj], configmaps: Sequence[Obj], services: Sequence[Obj],
                read_result: ResultReader, now: float, result_grace: float = 60.0) -> dict[Step, StepState]:
    states: dict[Step, StepState] = {}
    for plan in pipeline:
        if plan.kind == "serve":
            state = observe_serving(plan, deployments, configmaps, services)
        else:
            state = observe_step(plan, jobs, pods, read_result, now, result_grace)
        if state is not None:
            states[plan.step] = state
    return states
