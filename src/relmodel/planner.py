"""The pure pipeline planner: spec + observed step states -> what to do next.

No I/O here. Both executors (the kopf operator and the local runner) call `build_pipeline` to
get the steps with their parameters and output locations, observe what happened to each step
(a Job, a Celery run, a subprocess), and call `decide` to learn what to do next.

Steps are keyed by a content hash of their own settings and their inputs' keys, and write to
`<root>/<namespace>/<name>/<step>-<key>`. A spec change therefore re-runs exactly the steps it
affects; everything upstream is reused, and re-running a finished step is a no-op.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from relmodel.spec import RelevanceModel, TrainingSpec

RESULT_FILE = "result.json"


class Step(StrEnum):
    DATA = "data"
    BASE = "base"
    COT = "cot"
    BASELINE = "baseline"
    SFT = "sft"
    SAMPLES = "samples"
    DPO = "dpo"
    DIFFICULTY = "difficulty"
    GRPO = "grpo"
    EVAL = "eval"
    SERVE = "serve"


# How each step is carried out: a Celery data run, a training/eval Job (a trainer image entry
# point), or the serving rollout.
StepKind = Literal["task", "job", "serve"]
STEP_KIND: dict[Step, StepKind] = {
    Step.DATA: "task",
    Step.BASE: "job",
    Step.COT: "task",
    Step.BASELINE: "job",
    Step.SFT: "job",
    Step.SAMPLES: "task",
    Step.DPO: "job",
    Step.DIFFICULTY: "task",
    Step.GRPO: "job",
    Step.EVAL: "job",
    Step.SERVE: "serve",
}
# The module whose `main(["--config", path])` runs the step (the trainer image's entry point).
STEP_ENTRY: dict[Step, str] = {
    Step.DATA: "relmodel.tasks.data",
    Step.BASE: "relmodel.trainers.base",
    Step.COT: "relmodel.tasks.cot",
    Step.BASELINE: "relmodel.trainers.sft",
    Step.SFT: "relmodel.trainers.sft",
    Step.SAMPLES: "relmodel.tasks.sampling",
    Step.DPO: "relmodel.trainers.dpo",
    Step.DIFFICULTY: "relmodel.tasks.difficulty",
    Step.GRPO: "relmodel.trainers.grpo",
    Step.EVAL: "relmodel.evaluation",
    Step.SERVE: "relmodel.serving.rollout",
}
# Conditions users read, and the steps each one covers (KServe-style rollup into Ready).
CONDITION_STEPS: dict[str, tuple[Step, ...]] = {
    "DataReady": (Step.DATA, Step.BASE, Step.COT),
    "SFTSucceeded": (Step.BASELINE, Step.SFT),
    "DPOSucceeded": (Step.SAMPLES, Step.DPO),
    "GRPOSucceeded": (Step.DIFFICULTY, Step.GRPO),
    "EvalPassed": (Step.EVAL,),
    "ServingReady": (Step.SERVE,),
}
# Row names of the stage table, in order.
STAGE_ROWS: dict[Step, str] = {
    Step.BASELINE: "label-only SFT",
    Step.SFT: "CoT-SFT",
    Step.DPO: "+DPO",
    Step.GRPO: "+GRPO",
}


@dataclass(frozen=True)
class StepPlan:
    """One step of the pipeline: what runs, on what, writing where."""

    step: Step
    key: str
    output: str
    depends_on: tuple[Step, ...]
    params: dict[str, Any]

    @property
    def kind(self) -> StepKind:
        return STEP_KIND[self.step]

    @property
    def entry(self) -> str:
        return STEP_ENTRY[self.step]


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class Observation:
    """What an executor saw of one step (for the step's current key)."""

    phase: Phase
    key: str
    attempts: int = 0  # failed attempts so far
    failed_at: float | None = None  # unix time of the last failure
    message: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    permanent: bool = False  # the step said retrying cannot help (bad input): fail without retries


@dataclass(frozen=True)
class Condition:
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Action:
    """start: launch `step` (attempt n); wait: nothing to do until `not_before` or an event;
    fail: give up on `step`; done: the pipeline is complete; gate: eval refused the rollout."""

    verb: Literal["start", "wait", "fail", "done", "gate"]
    step: Step | None = None
    attempt: int = 0
    not_before: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class Decision:
    action: Action
    phase: str
    current_step: Step | None
    conditions: tuple[Condition, ...]


# --- the pipeline --------------------------------------------------------------------------------


def run_root(model: RelevanceModel, root: str | None = None) -> str:
    base = (root or model.spec.storage.uri).rstrip("/")
    return f"{base}/{model.metadata.namespace}/{model.metadata.name}"


def build_pipeline(model: RelevanceModel, root: str | None = None) -> list[StepPlan]:
    """Every enabled step in execution order, with params and output URIs; pure."""
    spec = model.spec
    prefix = run_root(model, root)
    plans: dict[Step, StepPlan] = {}

    def add(step: Step, settings: Any, depends_on: tuple[Step, ...], params: dict[str, Any]) -> StepPlan:
        key = _key(step, settings, [plans[d].key for d in depends_on])
        output = f"{prefix}/{step.value}-{key}"
        plan = StepPlan(step, key, output, depends_on, {"output": output, **params})
        plans[step] = plan
        return plan

    data = add(Step.DATA, spec.datasets, (), {"datasets": _dump(spec.datasets)})
    train_uri, eval_uri, rules_uri = (f"{data.output}/{f}" for f in ("train.jsonl", "eval.jsonl", "rules.jsonl"))
    base = add(
        Step.BASE, spec.base_model, (Step.DATA,), {"base_model": _dump(spec.base_model), "data": data.output}
    )
    base_model_uri = f"{base.output}/model"
    cot = add(
        Step.COT, spec.cot, (Step.DATA,),
        {"train": train_uri, "rules": rules_uri, "cot": _dump(spec.cot)},
    )
    cot_uri = f"{cot.output}/cot.jsonl"

    models: dict[str, str] = {}
    if spec.evaluation.baseline:
        baseline = add(
            Step.BASELINE, spec.stages.sft.training, (Step.BASE, Step.DATA),
            _training(spec.stages.sft.training, base_model_uri, train=train_uri, label_only=True,
                      chat_template=spec.base_model.chat_template),
        )
        models[STAGE_ROWS[Step.BASELINE]] = f"{baseline.output}/model"

    policy, policy_step = base_model_uri, Step.BASE
    if spec.stages.sft.enabled:
        sft = add(
            Step.SFT, spec.stages.sft, (Step.BASE, Step.COT),
            _training(spec.stages.sft.training, base_model_uri, train=cot_uri, label_only=False,
                      chat_template=spec.base_model.chat_template),
        )
        policy, policy_step = f"{sft.output}/model", Step.SFT
        models[STAGE_ROWS[Step.SFT]] = policy

    dpo_spec = spec.stages.dpo
    if dpo_spec.enabled:
        sampling = dpo_spec.model_dump(exclude={"training", "runtime", "enabled", "beta"})
        samples = add(
            Step.SAMPLES, sampling, (policy_step, Step.COT),
            {"model": policy, "cot": cot_uri, "seed": dpo_spec.training.seed,
             "chat_template": spec.base_model.chat_template, **sampling},
        )
        dpo = add(
            Step.DPO, {"beta": dpo_spec.beta, "training": dpo_spec.training}, (Step.SAMPLES, policy_step),
            {**_training(dpo_spec.training, policy, train=f"{samples.output}/pairs.jsonl",
                         chat_template=spec.base_model.chat_template), "beta": dpo_spec.beta},
        )
        policy, policy_step = f"{dpo.output}/model", Step.DPO
        models[STAGE_ROWS[Step.DPO]] = policy

    grpo_spec = spec.stages.grpo
    if grpo_spec.enabled:
        rollout = grpo_spec.model_dump(exclude={"training", "runtime", "enabled"})
        difficulty = add(
            Step.DIFFICULTY, rollout, (policy_step, Step.DATA),
            {"model": policy, "train": train_uri, "seed": grpo_spec.training.seed,
             "chat_template": spec.base_model.chat_template, **rollout},
        )
        grpo = add(
            Step.GRPO, grpo_spec, (Step.DIFFICULTY, policy_step),
            {**_training(grpo_spec.training, policy, train=train_uri,
                         chat_template=spec.base_model.chat_template),
             "pool": f"{difficulty.output}/pool.jsonl", **rollout},
        )
        policy, policy_step = f"{grpo.output}/model", Step.GRPO
        models[STAGE_ROWS[Step.GRPO]] = policy

    trained = [s for s in (Step.BASELINE, Step.SFT, Step.DPO, Step.GRPO) if s in plans]
    evaluation = add(
        Step.EVAL, {"evaluation": spec.evaluation, "beta": spec.serving.beta}, (Step.DATA, *trained),
        {"eval": eval_uri, "models": models, "serve_model": policy,
         "beta_grid": spec.evaluation.beta_grid.values(), "beta": spec.serving.beta,
         "chat_template": spec.base_model.chat_template},
    )
    if spec.serving.enabled:
        add(
            Step.SERVE, spec.serving, (Step.EVAL,),
            {"model": policy, "eval": evaluation.output, "serving": _dump(spec.serving)},
        )
    return list(plans.values())


def _training(training: TrainingSpec, model: str, *, train: str, chat_template: bool,
              label_only: bool | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"model": model, "train": train, "training": _dump(training),
                              "chat_template": chat_template}
    if label_only is not None:
        params["label_only"] = label_only
    return params


def _dump(settings: Any) -> Any:
    return settings.model_dump(mode="json") if hasattr(settings, "model_dump") else settings


def _key(step: Step, settings: Any, upstream: list[str]) -> str:
    payload = json.dumps({"step": step.value, "settings": _dump(settings), "upstream": upstream},
                         sort_keys=True, default=_dump)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


# --- decisions -----------------------------------------------------------------------------------


def decide(
    model: RelevanceModel,
    pipeline: list[StepPlan],
    observed: Mapping[Step, Observation],
    now: float,
    serving_macro_f1: float | None = None,
) -> Decision:
    """The next action for the pipeline, given what was observed of each step (for its key).

    Steps run one at a time, in order. A failed step is retried with exponential backoff until
    `spec.retries.limit` retries are spent, then the pipeline fails with the step's message; a
    permanent failure (the step's input is wrong) fails at once.
    After eval, the gates decide whether serving may roll out.
    """
    retries = model.spec.retries
    current = {p.step: observed[p.step] for p in pipeline if p.step in observed and observed[p.step].key == p.key}
    conditions = _conditions(model, pipeline, current, serving_macro_f1)
    gate = next(c for c in conditions if c.type == "EvalPassed")

    for plan in pipeline:
        obs = current.get(plan.step)
        if obs is not None and obs.phase == Phase.SUCCEEDED:
            if plan.step == Step.EVAL and gate.status == "False":
                return Decision(Action("gate", plan.step, reason=gate.message), "GateFailed", plan.step, conditions)
            continue
        if obs is not None and obs.phase == Phase.RUNNING:
            return Decision(Action("wait", plan.step, attempt=obs.attempts), _phase(plan.step), plan.step, conditions)
        if obs is not None and obs.phase == Phase.FAILED:
            if obs.permanent or obs.attempts > retries.limit:
                tries = "" if obs.permanent else f" after {obs.attempts} attempts"
                reason = f"{plan.step.value} failed{tries}: {obs.message}"
                return Decision(Action("fail", plan.step, obs.attempts, reason=reason), "Failed", plan.step, conditions)
            not_before = (obs.failed_at or now) + retries.backoff_seconds * 2 ** (obs.attempts - 1)
            if now < not_before:
                return Decision(Action("wait", plan.step, obs.attempts, not_before, obs.message),
                                "Retrying", plan.step, conditions)
            return Decision(Action("start", plan.step, obs.attempts), _phase(plan.step), plan.step, conditions)
        return Decision(Action("start", plan.step, 0), _phase(plan.step), plan.step, conditions)
    return Decision(Action("done"), "Ready", None, conditions)


def _phase(step: Step) -> str:
    return {
        Step.DATA: "PreparingData", Step.BASE: "PreparingData", Step.COT: "GeneratingCoT",
        Step.BASELINE: "Training", Step.SFT: "Training", Step.SAMPLES: "Sampling", Step.DPO: "Training",
        Step.DIFFICULTY: "Sampling", Step.GRPO: "Training", Step.EVAL: "Evaluating", Step.SERVE: "RollingOut",
    }[step]


def gate_verdict(model: RelevanceModel, metrics: Mapping[str, Any],
                 serving_macro_f1: float | None) -> tuple[bool, str]:
    """Whether eval metrics pass the spec's gates, and the measured values as a message."""
    gates = model.spec.gates
    macro_f1 = float(metrics.get("macro_f1", 0.0))
    if gates.min_macro_f1 is not None and macro_f1 < gates.min_macro_f1:
        return False, f"macro-F1 {macro_f1:.4f} is below the gate's minimum {gates.min_macro_f1:.4f}"
    if gates.no_regression and serving_macro_f1 is not None and macro_f1 + gates.tolerance < serving_macro_f1:
        return False, (f"macro-F1 {macro_f1:.4f} regresses from {serving_macro_f1:.4f} now serving "
                       f"(tolerance {gates.tolerance:.4f})")
    return True, f"macro-F1 {macro_f1:.4f}"


def _conditions(model: RelevanceModel, pipeline: list[StepPlan], current: Mapping[Step, Observation],
                serving_macro_f1: float | None) -> tuple[Condition, ...]:
    planned = {p.step for p in pipeline}
    conditions: list[Condition] = []
    for ctype, steps in CONDITION_STEPS.items():
        mine = [s for s in steps if s in planned]
        if not mine:
            conditions.append(Condition(ctype, "True", "Disabled", "not part of this pipeline"))
            continue
        obs = [current.get(s) for s in mine]
        failed = [(s, o) for s, o in zip(mine, obs, strict=True) if o is not None and o.phase == Phase.FAILED]
        if failed:
            step, o = failed[0]
            exhausted = o.permanent or o.attempts > model.spec.retries.limit
            conditions.append(Condition(ctype, "False", "Failed" if exhausted else "Retrying",
                                        f"{step.value}: {o.message}"))
        elif all(o is not None and o.phase == Phase.SUCCEEDED for o in obs):
            if ctype == "EvalPassed":
                passed, message = gate_verdict(model, current[Step.EVAL].metrics, serving_macro_f1)
                conditions.append(Condition(ctype, "True" if passed else "False",
                                            "GatePassed" if passed else "GateFailed", message))
            else:
                conditions.append(Condition(ctype, "True", "Succeeded", ""))
        elif any(o is not None and o.phase == Phase.RUNNING for o in obs):
            running = next(s for s, o in zip(mine, obs, strict=True) if o is not None and o.phase == Phase.RUNNING)
            conditions.append(Condition(ctype, "Unknown", "Running", f"{running.value} is running"))
        else:
            conditions.append(Condition(ctype, "Unknown", "Pending", ""))
    ready = all(c.status == "True" for c in conditions)
    conditions.append(Condition("Ready", "True" if ready else "False", "AllStepsSucceeded" if ready else "InProgress",
                                "" if ready else next(c.type for c in conditions if c.status != "True")))
    return tuple(conditions)
