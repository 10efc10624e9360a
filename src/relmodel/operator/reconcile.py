"""One level-based reconciliation of one RelevanceModel: observe -> plan (pure) -> act -> status.

Called for every trigger alike (the periodic resync, create/update/resume, child events); it reads
the object and its children fresh each time, so a missed or repeated event changes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import kopf
from pydantic import ValidationError

from relmodel.cumpt import DEFAULT_BETA
from relmodel.errors import validation_problems
from relmodel.operator import children as ch
from relmodel.operator.kube import Kube
from relmodel.operator.observe import StepState, format_time, next_attempt, observe_all, observe_run
from relmodel.operator.status import (
    ConditionStatus,
    RelevanceModelStatus,
    ServingStatus,
    StageStatus,
    dump_status,
    merge_conditions,
)
from relmodel.planner import Decision, Phase, Step, StepPlan, build_pipeline, decide
from relmodel.serving.config import CONFIG_FILE, CumPTConfig
from relmodel.spec import RelevanceModel
from relmodel.steps import read_result
from relmodel.tasks.service.client import DataRunClient, DataRunError

log = logging.getLogger("relmodel.operator")
#: emit(body, type, reason, message): post a Kubernetes Event about the RelevanceModel.
Emit = Callable[[Mapping[str, Any], str, str, str], None]
ResultReader = Callable[[str], Mapping[str, Any] | None]


@dataclass(frozen=True)
class OperatorSettings:
    """Knobs of the operator process (not of a RelevanceModel)."""

    namespace: str | None = None
    resync_seconds: float = 15.0
    result_grace_seconds: float = 60.0
    images: ch.Images = field(default_factory=ch.Images)
    #: The data-run service (`relmodel runs-service`); when set, task steps run there, not as Jobs.
    data_runs_url: str | None = None


@dataclass
class Outcome:
    """What one reconciliation did (for logs and tests)."""

    decision: Decision | None = None
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    status_changed: bool = False
    error: str | None = None


def safe_read_result(output: str) -> Mapping[str, Any] | None:
    """result.json from storage, or None when storage is unreadable from the operator."""
    try:
        return read_result(output)
    except Exception as exc:  # storage may be unreachable from the operator: metrics then come from pods
        log.debug("cannot read result of %s: %s", output, exc)
        return None


def parse_model(body: Mapping[str, Any]) -> RelevanceModel:
    meta = body.get("metadata", {})
    return RelevanceModel.model_validate({
        "apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
        "metadata": {k: meta.get(k) for k in ("name", "namespace", "generation", "uid") if meta.get(k) is not None},
        "spec": body.get("spec") or {},
    })


def render_context(body: Mapping[str, Any], settings: OperatorSettings) -> ch.RenderContext:
    raw = (body.get("metadata", {}).get("annotations") or {}).get(ch.ANNOTATION_POD_ANNOTATIONS)
    extra: dict[str, str] = {}
    if raw:
        try:
            value = json.loads(raw)
            extra = {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
        except ValueError:
            log.warning("ignoring %s: not a JSON object", ch.ANNOTATION_POD_ANNOTATIONS)
    return ch.RenderContext(images=settings.images, pod_annotations=extra)


def cumpt_config(model: RelevanceModel, serve: StepPlan, eval_state: StepState | None) -> CumPTConfig:
    """The CumPT config to serve: beta from the spec, else the one eval calibrated; token ids from eval."""
    metrics = dict(eval_state.observation.metrics) if eval_state else {}
    ids = metrics.get("grade_token_ids")
    if not (isinstance(ids, list | tuple) and len(ids) == 4):
        raise ValueError("the eval result has no grade_token_ids (4 token ids): cannot write the CumPT config")
    beta = model.spec.serving.beta if model.spec.serving.beta is not None else metrics.get("beta", DEFAULT_BETA)
    return CumPTConfig(
        model=ch.served_model_name(model), beta=float(beta), grade_token_ids=(ids[0], ids[1], ids[2], ids[3]),
        chat_template=model.spec.base_model.chat_template,
        max_items_per_request=model.spec.serving.max_items_per_request,
        macro_f1=metrics.get("macro_f1"), source=str(serve.params.get("eval")),
    )


class Reconciler:
    """Reconciles RelevanceModels through a Kube client (and the data-run service, when configured);
    `emit` posts Events."""

    def __init__(self, kube: Kube, settings: OperatorSettings, emit: Emit,
                 read: ResultReader = safe_read_result, runs: DataRunClient | None = None) -> None:
        self.kube = kube
        self.settings = settings
        self.emit = emit
        self.read = read
        self.runs = runs

    # --- entry ---------------------------------------------------------------------------------

    def reconcile(self, namespace: str, name: str, now: float) -> Outcome:
        body = self.kube.get("RelevanceModel", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return Outcome()  # gone or going: owner references clean the children up
        try:
            model = parse_model(body)
        except ValidationError as exc:
            return self._invalid(body, "; ".join(validation_problems(exc)), now)
        return self._reconcile(body, model, now)

    # --- steps ---------------------------------------------------------------------------------

    def _reconcile(self, body: dict[str, Any], model: RelevanceModel, now: float) -> Outcome:
        ns, name = model.metadata.namespace, model.metadata.name
        uid = body["metadata"]["uid"]
        pipeline = build_pipeline(model)
        selector = f"{ch.LABEL_MODEL}={name}"
        owned = {kind: [o for o in self.kube.list(kind, ns, selector) if _owned_by(o, uid)]
                 for kind in ("Job", "Deployment", "ConfigMap", "Service")}
        pods = self.kube.list("Pod", ns, selector)
        states = observe_all(pipeline, owned["Job"], pods, owned["Deployment"], owned["ConfigMap"],
                             owned["Service"], self.read, now, self.settings.result_grace_seconds)
        try:
            states.update(self._observe_runs(pipeline))
        except DataRunError as exc:  # decide nothing on half the facts: a step done there would look undone
            return self._unobservable(body, f"cannot observe the data steps: {exc}")
        plans = {p.step: p for p in pipeline}
        serving_f1, served, served_key = self._served(owned["ConfigMap"], plans.get(Step.SERVE))
        decision = decide(model, pipeline, {s: st.observation for s, st in states.items()}, now, serving_f1)
        outcome = Outcome(decision)
        ctx = render_context(body, self.settings)
        action = decision.action
        if action.verb == "start" and action.step is not None:
            plan = plans[action.step]
            try:
                if plan.kind == "serve":
                    served = self._roll_out(body, model, plan, states.get(Step.EVAL), ctx, outcome)
                    served_key = plan.key
                else:
                    self._start_step(body, model, plan, owned["Job"], ctx, outcome)
            except (ValueError, DataRunError) as exc:
                outcome.error = str(exc)
        self._drop_superseded(pipeline, owned["Job"], outcome)
        status = self._status(body, model, pipeline, states, decision, (served, served_key), outcome, now)
        self._write_status(body, status, outcome)
        return outcome

    def _observe_runs(self, pipeline: list[StepPlan]) -> dict[Step, StepState]:
        """The task steps' runs on the data-run service (DataRunError when it cannot be asked)."""
        states: dict[Step, StepState] = {}
        if self.runs is None:
            return states
        for plan in (p for p in pipeline if p.kind == "task"):
            state = observe_run(plan, self.runs.find(ch.render_run_request(plan).run_id()))
            if state is not None:
                states[plan.step] = state
        return states

    def _start_step(self, body: dict[str, Any], model: RelevanceModel, plan: StepPlan, jobs: list[dict[str, Any]],
                    ctx: ch.RenderContext, outcome: Outcome) -> None:
        """Get-or-create the params ConfigMap and the Job of the next attempt (never two per attempt);
        a task step goes to the data-run service instead, when the operator has one."""
        if plan.kind == "task" and self.runs is not None:
            self._start_run(body, plan, outcome)
            return
        attempt = next_attempt(plan, jobs)
        params = ch.render_params_configmap(model, plan)
        job = ch.render_task(model, plan, attempt, ctx) if plan.kind == "task" else ch.render_job(
            model, plan, attempt, ctx)
        kopf.adopt([params, job], owner=_owner(body))
        self.kube.create(params)
        if self.kube.create(job):
            jname = job["metadata"]["name"]
            outcome.created.append(jname)
            what = f"attempt {attempt + 1}" if attempt else "first attempt"
            self.emit(body, "Normal", "JobCreated", f"Created Job {jname} for step {plan.step.value} ({what})")

    def _start_run(self, body: dict[str, Any], plan: StepPlan, outcome: Outcome) -> None:
        """Submit the step's data run; the service starts a new or failed run and returns a live one as is."""
        assert self.runs is not None
        request = ch.render_run_request(plan)
        run = self.runs.start(request.kind, request.params)
        outcome.created.append(run.id)
        what = f"attempt {run.attempts + 1}" if run.attempts else "first attempt"
        self.emit(body, "Normal", "DataRunStarted",
                  f"Started data run {run.id} for step {plan.step.value} ({what}) on {self.settings.data_runs_url}")

    def _roll_out(self, body: dict[str, Any], model: RelevanceModel, plan: StepPlan, eval_state: StepState | None,
                  ctx: ch.RenderContext, outcome: Outcome) -> CumPTConfig:
        """Create or update the CumPT ConfigMap, the engine and the gateway (Deployments + Services)."""
        config = cumpt_config(model, plan, eval_state)
        objs = ch.render_serving(model, plan, config, ctx)
        for obj in objs:
            obj["metadata"].setdefault("annotations", {})[ch.ANNOTATION_CONFIG_HASH] = ch.config_hash(
                {"obj": json.dumps(obj, sort_keys=True)})
        kopf.adopt(objs, owner=_owner(body))
        for obj in objs:
            kind, name, ns = obj["kind"], obj["metadata"]["name"], obj["metadata"]["namespace"]
            existing = self.kube.get(kind, ns, name)
            if existing is None:
                self.kube.create(obj)
                outcome.created.append(f"{kind}/{name}")
                self.emit(body, "Normal", "ServingCreated", f"Created {kind} {name}")
            elif (existing["metadata"].get("annotations") or {}).get(ch.ANNOTATION_CONFIG_HASH) != \
                    obj["metadata"]["annotations"][ch.ANNOTATION_CONFIG_HASH]:
                self.kube.merge_patch(kind, ns, name, {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
                self.emit(body, "Normal", "ServingUpdated", f"Updated {kind} {name} to serving key {plan.key}")
        return config

    def _served(self, configmaps: list[dict[str, Any]], serve: StepPlan | None
                ) -> tuple[float | None, CumPTConfig | None, str | None]:
        """The CumPT config now deployed and its serve key; its macro-F1 is the no-regression reference
        when it belongs to another model than the one the spec now plans to serve."""
        cm = next((c for c in configmaps if (c["metadata"].get("labels") or {}).get(ch.LABEL_ROLE) == "cumpt"), None)
        if cm is None:
            return None, None, None
        try:
            config = CumPTConfig.model_validate_json((cm.get("data") or {}).get(CONFIG_FILE, ""))
        except ValidationError:
            return None, None, None
        key = (cm["metadata"].get("labels") or {}).get(ch.LABEL_KEY)
        other = serve is None or key != serve.key
        return (config.macro_f1 if other else None), config, key

    def _drop_superseded(self, pipeline: list[StepPlan], jobs: list[dict[str, Any]], outcome: Outcome) -> None:
        """Delete still-running Jobs whose step+key the current spec no longer plans (a spec change)."""
        wanted = {(p.step.value, p.key) for p in pipeline}
        for job in jobs:
            lab = job["metadata"].get("labels") or {}
            running = not any(c.get("status") == "True" and c.get("type") in ("Complete", "Failed")
                              for c in job.get("status", {}).get("conditions") or [])
            if running and (lab.get(ch.LABEL_STEP), lab.get(ch.LABEL_KEY)) not in wanted:
                self.kube.delete("Job", job["metadata"]["namespace"], job["metadata"]["name"])
                outcome.deleted.append(job["metadata"]["name"])

    # --- status --------------------------------------------------------------------------------

    def _status(self, body: dict[str, Any], model: RelevanceModel, pipeline: list[StepPlan],
                states: Mapping[Step, StepState], decision: Decision,
                served_by: tuple[CumPTConfig | None, str | None], outcome: Outcome, now: float
                ) -> RelevanceModelStatus:
        previous = body.get("status") or {}
        stamp = format_time(now)
        generation = body["metadata"].get("generation")
        stages: dict[str, StageStatus] = {}
        for plan in pipeline:
            st = states.get(plan.step)
            obs = st.observation if st else None
            stages[plan.step.value] = StageStatus(
                key=plan.key, phase=(obs.phase if obs else Phase.PENDING).value, attempts=obs.attempts if obs else 0,
                job=st.job if st else None, run=st.run if st else None, start_time=st.start_time if st else None,
                completion_time=st.completion_time if st else None,
                message=(obs.message or None) if obs else None, output=plan.output,
                metrics=dict(obs.metrics) if obs else {},
            )
        conditions = [ConditionStatus(type=c.type, status=c.status, reason=c.reason, message=c.message,
                                      observed_generation=generation) for c in decision.conditions]
        action = decision.action
        message = action.reason or None
        if outcome.error:
            message = outcome.error
        eval_state = states.get(Step.EVAL)
        macro_f1 = eval_state.observation.metrics.get("macro_f1") if eval_state else None
        serving = None
        served, served_key = served_by
        if served is not None:
            serve = next((p for p in pipeline if p.step == Step.SERVE), None)
            serving = ServingStatus(
                endpoint=ch.gateway_endpoint(model), engine_endpoint=ch.engine_endpoint(model),
                model=str(serve.params["model"]) if serve is not None and serve.key == served_key else None,
                key=served_key, beta=served.beta, macro_f1=served.macro_f1,
            )
        return RelevanceModelStatus(
            observed_generation=generation, phase=decision.phase,
            current_step=decision.current_step.value if decision.current_step else None,
            message=message, macro_f1=float(macro_f1) if isinstance(macro_f1, int | float) else None,
            conditions=merge_conditions(list(previous.get("conditions") or []), conditions, stamp),
            stages=stages, serving=serving,
        )

    def _write_status(self, body: dict[str, Any], status: RelevanceModelStatus, outcome: Outcome) -> None:
        previous = body.get("status") or {}
        new = dump_status(status)
        if _comparable(previous) == _comparable(new):
            return
        patch: dict[str, Any] = {**{k: None for k in previous if k not in new}, **new}
        old_stages = previous.get("stages") or {}
        patch["stages"] = {**{k: None for k in old_stages if k not in new.get("stages", {})}, **new.get("stages", {})}
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        self.kube.merge_patch("RelevanceModel", ns, name, {"status": patch}, subresource="status")
        outcome.status_changed = True
        self._events(body, previous, new)

    def _events(self, body: dict[str, Any], previous: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        """One Event per transition: phase changes and condition status changes."""
        if previous.get("phase") != new.get("phase"):
            kind = "Warning" if new.get("phase") in ("Failed", "GateFailed", "Invalid", "Retrying") else "Normal"
            step = f" (step {new['currentStep']})" if new.get("currentStep") else ""
            detail = f": {new['message']}" if new.get("message") and kind == "Warning" else ""
            self.emit(body, kind, new.get("phase") or "Phase",
                      f"phase {previous.get('phase') or '-'} -> {new.get('phase')}{step}{detail}")
        before = {c.get("type"): c for c in previous.get("conditions") or []}
        for cond in new.get("conditions") or []:
            old = before.get(cond["type"])
            if old is None or old.get("status") != cond["status"]:
                kind = "Warning" if cond["status"] == "False" and cond["reason"] not in ("InProgress",) else "Normal"
                text = f"{cond['type']}={cond['status']} ({cond['reason']})"
                if cond.get("message"):
                    text += f": {cond['message']}"
                self.emit(body, kind, cond["type"], text)

    def _unobservable(self, body: dict[str, Any], problem: str) -> Outcome:
        """Say why nothing moves (in status.message only: phases and conditions stay as they were)."""
        log.warning("%s/%s: %s", body["metadata"]["namespace"], body["metadata"]["name"], problem)
        outcome = Outcome(error=problem)
        if (body.get("status") or {}).get("message") != problem:
            self.kube.merge_patch("RelevanceModel", body["metadata"]["namespace"], body["metadata"]["name"],
                                  {"status": {"message": problem}}, subresource="status")
            outcome.status_changed = True
        return outcome

    def _invalid(self, body: dict[str, Any], problem: str, now: float) -> Outcome:
        """A spec the API server accepted but the models refuse (a rule without a CEL twin): report, do not crash."""
        previous = body.get("status") or {}
        generation = body["metadata"].get("generation")
        cond = ConditionStatus(type="Ready", status="False", reason="InvalidSpec", message=problem,
                               observed_generation=generation)
        status = RelevanceModelStatus(
            observed_generation=generation, phase="Invalid", message=problem,
            conditions=merge_conditions(list(previous.get("conditions") or []), [cond], format_time(now)),
        )
        outcome = Outcome(error=problem)
        self._write_status(body, status, outcome)
        return outcome


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences") or [])


def _comparable(status: Mapping[str, Any]) -> str:
    return json.dumps(status, sort_keys=True, default=str)


def _owner(body: Mapping[str, Any]) -> kopf.Body:
    return kopf.Body(cast(kopf.RawBody, body))
