"""The local executor: the same plan and the same step entry points as the cluster, on one machine.

Training, eval and model steps run as subprocesses (`python -m <entry> --config params.json`,
exactly what the trainer image runs); data steps run in process with Celery tasks applied
eagerly. State lives in the step outputs themselves: `result.json` marks success and
`failures.json` counts failed attempts, so `relmodel run` resumes where it stopped.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relmodel import storage
from relmodel.errors import RelmodelError
from relmodel.planner import Decision, Observation, Phase, Step, StepPlan, build_pipeline, decide
from relmodel.spec import RelevanceModel
from relmodel.steps import EXIT_PERMANENT, read_result, run_step

FAILURES_FILE = "failures.json"
PARAMS_FILE = "params.json"
LOG_FILE = "log.txt"


class StepFailed(Exception):
    """A step subprocess exited non-zero; `permanent` when it said its input is wrong."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass
class StepEvent:
    """What a progress display needs to know about one step."""

    step: Step
    status: str  # started | succeeded | failed | skipped
    seconds: float = 0.0
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[StepEvent], None]


class LocalExecutor:
    def __init__(self, model: RelevanceModel, root: str, listener: Listener | None = None,
                 in_process: bool = False, sleep: Callable[[float], None] = time.sleep) -> None:
        self.model = model
        self.root = root
        self.pipeline = build_pipeline(model, root)
        self.listener = listener or (lambda event: None)
        self.in_process = in_process  # run job steps in this process (tests); default: subprocesses
        self.sleep = sleep

    def observe(self, plan: StepPlan) -> Observation | None:
        result = read_result(plan.output)
        if result is not None:
            return Observation(Phase.SUCCEEDED, plan.key, metrics=result)
        failures_uri = storage.join(plan.output, FAILURES_FILE)
        if storage.exists(failures_uri):
            failures = json.loads(storage.read_text(failures_uri))
            return Observation(Phase.FAILED, plan.key, attempts=failures["attempts"],
                               failed_at=failures["failed_at"], message=failures["message"],
                               permanent=failures.get("permanent", False))
        return None

    def run(self) -> Decision:
        """Run the pipeline until it is done, fails, or a gate stops it."""
        for plan in self.pipeline:
            if read_result(plan.output) is not None:
                self.listener(StepEvent(plan.step, "skipped", message="already done"))
        while True:
            observed = {p.step: o for p in self.pipeline if (o := self.observe(p)) is not None}
            decision = decide(self.model, self.pipeline, observed, now=time.time())
            action = decision.action
            if action.verb == "start" and action.step is not None:
                self.execute(next(p for p in self.pipeline if p.step == action.step), action.attempt)
            elif action.verb == "wait" and action.not_before is not None:
                self.sleep(max(0.0, action.not_before - time.time()))
            else:
                return decision

    def execute(self, plan: StepPlan, attempt: int) -> None:
        self.listener(StepEvent(plan.step, "started", message=f"attempt {attempt + 1}"))
        started = time.time()
        storage.write_text(storage.join(plan.output, PARAMS_FILE), json.dumps(plan.params, indent=2))
        try:
            if plan.kind == "job" and not self.in_process:
                self._subprocess(plan)
            else:
                run_step(importlib.import_module(plan.entry).run, plan.params)
        except Exception as exc:  # a failed step is recorded, retried by the planner, reported
            message = str(exc) or type(exc).__name__
            permanent = (isinstance(exc, StepFailed) and exc.permanent) or isinstance(exc, RelmodelError)
            storage.write_text(storage.join(plan.output, FAILURES_FILE), json.dumps(
                {"attempts": attempt + 1, "failed_at": time.time(), "message": message, "permanent": permanent}))
            self.listener(StepEvent(plan.step, "failed", time.time() - started, message))
            return
        self.listener(StepEvent(plan.step, "succeeded", time.time() - started,
                                metrics=read_result(plan.output) or {}))

    def _subprocess(self, plan: StepPlan) -> None:
        fs, path = storage.filesystem(plan.output)
        if "file" not in fs.protocol:
            raise RelmodelError("the local executor runs job steps against a file:// storage root")
        log_path = os.path.join(path, LOG_FILE)
        command = [sys.executable, "-m", plan.entry, "--config", os.path.join(path, PARAMS_FILE)]
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
        if completed.returncode != 0:
            message = _last_error(log_path) or f"{plan.entry} exited with {completed.returncode}"
            raise StepFailed(message, permanent=completed.returncode == EXIT_PERMANENT)


def _last_error(log_path: str) -> str:
    with open(log_path, encoding="utf-8", errors="replace") as log:
        lines = [line.rstrip() for line in log if line.strip()]
    errors = [line for line in lines if line.startswith("error:") or "Error" in line.split(":")[0]]
    return (errors[-1] if errors else (lines[-1] if lines else ""))[:500]
