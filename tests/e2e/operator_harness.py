"""The operator e2e tests' harness: kubectl as a user, the operator process, the Trainer that plays
the step Jobs' work on kwok's fake node, and a status timeline."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from relmodel import storage
from relmodel.operator.children import ANNOTATION_OUTPUT, LABEL_MODEL, LABEL_STEP
from relmodel.planner import Step
from relmodel.testing.controlplane import POD_FAIL_ANNOTATION
from relmodel.testing.waiting import stop_group, wait_for

ROOT = Path(__file__).resolve().parents[2]
TINY = yaml.safe_load((ROOT / "examples" / "relevancemodel-tiny.yaml").read_text())
STEP_ORDER = [s.value for s in Step if s != Step.SERVE]
MODEL_STEPS = {s.value for s in (Step.BASE, Step.BASELINE, Step.SFT, Step.DPO, Step.GRPO)}


# --- kubectl as a user ---------------------------------------------------------------------------


def kubectl(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, timeout=60, check=False)
    if check:
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result


def kget(*args: str) -> Any:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)



def manifest(name: str, ns: str, root: Path, **spec: Any) -> dict[str, Any]:
    raw = copy.deepcopy(TINY)
    raw["metadata"] = {"name": name, "namespace": ns}
    raw["spec"]["storage"] = {"uri": f"file://{root}"}
    raw["spec"]["retries"] = {"limit": 2, "backoffSeconds": 1}
    raw["spec"].update(spec)
    return raw


class Operator:
    """`python -m relmodel.operator` as a subprocess (the way it runs in its pod), restartable."""

    def __init__(self, namespace: str, log_dir: Path, extra_args: Sequence[str] = ()) -> None:
        self.namespace = namespace
        self.log_dir = log_dir
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"operator-{self.starts}.log", "wb")  # noqa: SIM115 - closed by the child
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relmodel.operator", "-n", self.namespace, "--resync-seconds", "2",
             "--result-grace-seconds", "20", "-v", *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL: no cleanup, no graceful shutdown (the worst case)."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log")))


class Trainer(threading.Thread):
    """Plays the steps' work: for every new Job, write its result.json (what the real step writes).

    With `model`, a step that trains or builds a model also leaves a copy of that (real) model at
    `<output>/model`, so steps that load one (sampling, difficulty) can run for real after it.
    """

    def __init__(self, ns: str, metrics: Callable[[str], dict[str, Any]], model: Path | None = None) -> None:
        super().__init__(daemon=True)
        self.ns = ns
        self.metrics = metrics
        self.model = model
        self.seen: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(Exception):
                for job in kget("jobs", "-n", self.ns)["items"]:
                    name = job["metadata"]["name"]
                    if name in self.seen:
                        continue
                    self.seen[name] = job
                    self.order.append(name)
                    step = job["metadata"]["labels"][LABEL_STEP]
                    pod_annotations = job["spec"]["template"]["metadata"].get("annotations") or {}
                    if POD_FAIL_ANNOTATION not in pod_annotations:
                        output = job["metadata"]["annotations"][ANNOTATION_OUTPUT]
                        if self.model is not None and step in MODEL_STEPS:
                            shutil.copytree(self.model, Path(output.removeprefix("file://")) / "model",
                                            dirs_exist_ok=True)
                        result = {**self.metrics(step), "seconds": 0.1}
                        storage.write_text(f"{output}/result.json", json.dumps(result))
            self.stop_event.wait(0.1)


def default_metrics(step: str) -> dict[str, Any]:
    if step == "eval":
        return {"macro_f1": 0.61, "beta": 0.55, "grade_token_ids": [16, 17, 18, 19]}
    return {"loss": 0.5, "step": step}


class Timeline:
    """Polls the object's status and records each change of phase/step/conditions."""

    def __init__(self, ns: str, name: str) -> None:
        self.ns, self.name = ns, name
        self.t0 = time.monotonic()
        self.rows: list[tuple[float, str]] = []

    def poll(self) -> dict[str, Any] | None:
        result = kubectl("get", "relm", self.name, "-n", self.ns, "-o", "json", check=False)
        if result.returncode != 0:
            return None
        obj = json.loads(result.stdout)
        status = obj.get("status") or {}
        conds = " ".join(f"{c['type']}={c['status'][0]}" for c in status.get("conditions") or [])
        row = f"{status.get('phase', '-'):<14} {status.get('currentStep') or '-':<10} {conds}"
        if not self.rows or self.rows[-1][1] != row:
            self.rows.append((time.monotonic() - self.t0, row))
        return obj

    def until(self, what: str, check: Callable[[dict[str, Any]], bool], timeout: float = 120.0) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            obj = self.poll()
            return obj if obj is not None and check(obj) else None
        return wait_for(what, probe, timeout, every=0.25)

    def render(self) -> str:
        return "\n".join(f"  t={t:6.1f}s  {row}" for t, row in self.rows)


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), {})


def jobs_by_step(ns: str, name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for job in kget("jobs", "-n", ns, "-l", f"{LABEL_MODEL}={name}")["items"]:
        out.setdefault(job["metadata"]["labels"][LABEL_STEP], []).append(job["metadata"]["name"])
    return out


