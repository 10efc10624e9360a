"""The operator runs the data steps on the data-run service, on a real control plane.

What is real: the control plane and the operator process (as in test_operator.py); a redis-server, a
`celery worker` process and the data-run service (`python -m relmodel.tasks.service`), which run the
data, CoT, sampling and difficulty steps for real: on a real tiny model, writing real files. The
operator only talks HTTP to the service (`--data-runs-url`), never to Celery or Redis.

What is simulated: the training Jobs' work on kwok's fake node (the Trainer writes result.json and
leaves a real tiny model as the step's model, so the sampling and difficulty runs that load it work).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.conftest import make_pairs
from tests.e2e.operator_harness import (
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
from tests.tasks.processes import DataService, RedisServer, Worker

from relmodel.data.jsonl import read_jsonl
from relmodel.data.schemas import GradedPair
from relmodel.format import build_prompt
from relmodel.planner import Step, build_pipeline
from relmodel.spec import TinyModelSpec, parse_manifest
from relmodel.tasks.service.client import DataRunClient
from relmodel.tasks.service.models import RunState
from relmodel.trainers.base import build_tiny, format_corpus

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

TASK_STEPS = {Step.DATA, Step.COT, Step.SAMPLES, Step.DIFFICULTY}
JOB_STEPS = {"base", "baseline", "sft", "dpo", "grpo", "eval"}
# Small enough that sampling and difficulty scoring on one worker take seconds.
SMALL = {
    "datasets": {"synthetic": {"seed": 7, "trainSize": 64, "evalSize": 32}},
    "stages": {
        "sft": {"training": {"epochs": 1, "batchSize": 8}},
        "dpo": {"samples": 2, "maxPrompts": 12, "maxNewTokens": 16, "training": {"maxSteps": 1, "batchSize": 4}},
        "grpo": {"rounds": 1, "groupSize": 2, "promptsPerRound": 8, "maxCompletionLength": 16,
                 "training": {"batchSize": 4}},
    },
}


class Services:
    """redis-server + one Celery worker for the module; the data-run service started on demand."""

    def __init__(self, workdir: Path) -> None:
        self.redis = RedisServer(workdir)
        self.redis.start()
        self.worker = Worker("e2e", self.redis.url, workdir)
        self.service = DataService(self.redis.url, workdir)

    def up(self) -> DataService:
        if self.service.proc is None or self.service.proc.poll() is not None:
            self.service.start()
        return self.service

    def stop(self) -> None:
        self.service.kill()
        self.worker.kill()
        self.redis.stop()


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    stack = Services(tmp_path_factory.mktemp("data-services"))
    stack.worker.wait_ready()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny model whose tokenizer has the grade digits as single tokens."""
    path = tmp_path_factory.mktemp("tiny-model")
    texts = format_corpus() + [build_prompt(p.query, p.title, p.attributes) for p in make_pairs(96)]
    build_tiny(texts, TinyModelSpec(vocab_size=400, hidden_size=32, num_layers=1, num_heads=2), f"file://{path}")
    return path


@pytest.fixture
def operator(ns: str, tmp_path: Path, services: Services) -> Iterator[Operator]:
    op = Operator(ns, tmp_path, extra_args=["--data-runs-url", services.service.url])
    op.start()
    yield op
    op.stop()
    assert "Traceback" not in op.logs(), op.logs()[-4000:]


@pytest.fixture
def trainer(ns: str, tiny_model: Path) -> Iterator[Trainer]:
    worker = Trainer(ns, default_metrics, model=tiny_model)
    worker.start()
    yield worker
    worker.stop_event.set()
    worker.join(5)


def small_manifest(name: str, ns: str, root: Path) -> dict[str, object]:
    raw = manifest(name, ns, root)
    for key, value in SMALL.items():
        raw["spec"][key] = {**raw["spec"].get(key, {}), **value} if key == "stages" else value
    return raw


def test_data_steps_run_on_the_service_and_training_steps_as_jobs(
        ns: str, services: Services, operator: Operator, trainer: Trainer, tmp_path: Path) -> None:
    raw = small_manifest("svc", ns, tmp_path / "store")
    plans = {p.step: p for p in build_pipeline(parse_manifest(raw))}
    kubectl("apply", "-f", "-", input=yaml.safe_dump(raw))
    timeline = Timeline(ns, "svc")

    # The service is not up yet: the operator says so in the status and decides nothing.
    down = timeline.until("the service error in status",
                          lambda o: "data-run service" in ((o.get("status") or {}).get("message") or ""), timeout=60)
    assert "cannot observe the data steps" in down["status"]["message"]
    assert "ConnectError" in down["status"]["message"] and jobs_by_step(ns, "svc") == {}

    services.up()
    # The service goes away once the data is ready: status says so, and nothing done looks undone.
    timeline.until("DataReady=True", lambda o: condition(o, "DataReady").get("status") == "True", timeout=120)
    services.service.kill()
    gone = timeline.until("the outage in status", lambda o: "cannot observe" in (o["status"].get("message") or ""),
                          timeout=60)
    assert condition(gone, "DataReady")["status"] == "True" and gone["status"]["phase"] != "PreparingData"
    assert gone["status"]["stages"]["data"]["phase"] == "Succeeded"
    services.up()  # same Redis: the service finds its runs again
    obj = timeline.until("Ready=True", lambda o: condition(o, "Ready").get("status") == "True", timeout=300)
    print(f"\ntimeline:\n{timeline.render()}")

    # Training steps ran as Jobs; the data steps never did.
    assert set(jobs_by_step(ns, "svc")) == JOB_STEPS
    # The data steps ran on the service, once each, and their real results are the stage metrics.
    with DataRunClient(services.service.url) as client:
        runs = {r.kind: r for r in client.recent()}
    assert set(runs) == {s.value for s in TASK_STEPS}
    stages = obj["status"]["stages"]
    for step in TASK_STEPS:
        run = runs[step.value]
        assert run.state == RunState.SUCCEEDED and run.attempts == 1, (run.id, run.error)
        assert run.output == plans[step].output and run.progress.shards_done == run.progress.shards_total >= 1
        stage = stages[step.value]
        assert stage["run"] == run.id and stage["phase"] == "Succeeded" and stage.get("job") is None
        assert {k: stage["metrics"][k] for k in run.result or {}} == run.result
    assert stages["data"]["metrics"]["train"]["pairs"] == 64
    assert len(read_jsonl(f"{plans[Step.DATA].output}/train.jsonl", GradedPair)) == 64
    assert stages["cot"]["metrics"]["accepted"] + stages["cot"]["metrics"]["rejected"] == 64
    assert runs["cot"].counts.rows == stages["cot"]["metrics"]["accepted"]
    assert stages["samples"]["metrics"]["prompts"] == 12
    events = kget("events", "-n", ns, "--field-selector", "reason=DataRunStarted")["items"]
    assert sorted(e["message"].split(" for step ")[1].split(" ")[0] for e in events) == sorted(
        s.value for s in TASK_STEPS)


def test_bad_input_fails_the_data_run_once_without_retries(
        ns: str, services: Services, operator: Operator, trainer: Trainer, tmp_path: Path) -> None:
    services.up()
    raw = manifest("bad", ns, tmp_path / "store",
                   datasets={"train": f"file://{tmp_path}/nope/train.jsonl", "eval": f"file://{tmp_path}/eval.jsonl"})
    kubectl("apply", "-f", "-", input=yaml.safe_dump(raw))
    timeline = Timeline(ns, "bad")
    obj = timeline.until("phase Failed", lambda o: (o.get("status") or {}).get("phase") == "Failed", timeout=120)
    data = obj["status"]["stages"]["data"]
    assert data["attempts"] == 1 and "nope/train.jsonl" in data["message"], data
    assert "nope/train.jsonl" in obj["status"]["message"]
    with DataRunClient(services.service.url) as client:
        run = client.get(data["run"])
        assert run.state == RunState.FAILED and run.permanent
        time.sleep(5)  # backoff is 1 s and resync 2 s: a retry would have started by now
        assert client.get(data["run"]).attempts == 1
    assert kget("relm", "bad", "-n", ns)["status"]["phase"] == "Failed"
    assert jobs_by_step(ns, "bad") == {}
