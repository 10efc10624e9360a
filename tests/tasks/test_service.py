"""The data-run service against real Redis and real workers: the operator's path (`DataRunClient`,
the planner's step params) from POST to merged output, bad input, and a service restart mid-run."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from relmodel.planner import Step, StepPlan, build_pipeline
from relmodel.tasks.service.client import DataRunClient, DataRunError
from relmodel.tasks.service.models import RunState, RunStatus
from relmodel.testing.waiting import wait_for
from tests.manifests import smoke_manifest
from tests.tasks.fake_teacher import FakeTeacher
from tests.tasks.processes import DataService, RedisServer, Worker

pytestmark = pytest.mark.timeout(300)
TRAIN_PAIRS = 32


def plans(root: Path, teacher: FakeTeacher, model: str) -> dict[Step, StepPlan]:
    manifest = smoke_manifest(**{
        "spec.datasets.synthetic": {"seed": 3, "trainSize": TRAIN_PAIRS, "evalSize": 8},
        "spec.cot": {"teacher": {"kind": "openai", "endpoint": teacher.url, "model": model, "maxConcurrency": 4,
                                 "maxRetries": 3},
                     "retriever": "bm25", "topK": 3},
    })
    return {p.step: p for p in build_pipeline(manifest, root=str(root))}


def run_to_end(client: DataRunClient, plan: StepPlan, **extra: Any) -> RunStatus:
    started = client.start(plan.step.value, {**plan.params, **extra})  # type: ignore[arg-type]
    return client.wait(started.id, timeout=180, poll=0.2)


def jsonl(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.fixture
def client(data_service: DataService) -> DataRunClient:
    return DataRunClient(data_service.url)


def test_cot_run_counts_rows_and_rejections_by_reason(
        client: DataRunClient, workers: Callable[..., Worker], fake_teacher: FakeTeacher, tmp_path: Path) -> None:
    workers("a")
    workers("b")
    steps = plans(tmp_path, fake_teacher, "fake-mixed")
    data = run_to_end(client, steps[Step.DATA])
    assert data.state == RunState.SUCCEEDED, data.error

    cot = run_to_end(client, steps[Step.COT], shard_size=8)
    assert cot.state == RunState.SUCCEEDED, cot.error
    assert (cot.progress.shards_done, cot.progress.shards_total) == (4, 4)
    accepted, rejected = jsonl(f"{cot.output}/cot.jsonl"), jsonl(f"{cot.output}/cot.rejected.jsonl")
    assert cot.counts.rows == len(accepted) and cot.counts.rejected == len(rejected)
    assert cot.counts.rows + cot.counts.rejected == TRAIN_PAIRS
    assert cot.counts.rejected > 0 and cot.counts.errors_by_reason == {"unparsable": cot.counts.rejected}
    ids = [r["pair"]["item_id"] for r in accepted + rejected]
    assert len(ids) == len(set(ids)) == TRAIN_PAIRS, "every pair exactly once"
    assert cot.result is not None and cot.result["accepted"] == len(accepted)

    again = client.start("cot", {**steps[Step.COT].params, "shard_size": 8})
    assert again.id == cot.id and again.state == RunState.SUCCEEDED, "posting a run twice does not re-run it"
    assert [r.id for r in client.recent()][:2] == [cot.id, data.id]

    metrics = httpx.get(f"{client._http.base_url}/metrics").text
    assert 'relmodel_data_runs_total{kind="cot",state="succeeded"} 1.0' in metrics
    assert f'relmodel_data_run_rows_total{{kind="cot",outcome="rejected"}} {float(cot.counts.rejected)}' in metrics


def test_teacher_429_and_503_are_retried_and_a_broken_teacher_fails_the_run(
        client: DataRunClient, workers: Callable[..., Worker], fake_teacher: FakeTeacher, tmp_path: Path) -> None:
    workers("a")
    flaky = plans(tmp_path / "flaky", fake_teacher, "fake-flaky")
    assert run_to_end(client, flaky[Step.DATA]).state == RunState.SUCCEEDED
    cot = run_to_end(client, flaky[Step.COT], shard_size=16)
    assert cot.state == RunState.SUCCEEDED, cot.error
    assert cot.counts.rows == TRAIN_PAIRS and cot.counts.rejected == 0
    assert fake_teacher.calls[429] == TRAIN_PAIRS and fake_teacher.calls[503] == TRAIN_PAIRS

    broken = plans(tmp_path / "broken", fake_teacher, "fake-broken")
    assert run_to_end(client, broken[Step.DATA]).state == RunState.SUCCEEDED
    failed = run_to_end(client, broken[Step.COT], shard_size=16)
    assert failed.state == RunState.FAILED
    assert failed.error is not None and "produced no acceptable rationale" in failed.error
    assert failed.counts.errors_by_reason == {"teacher_error": TRAIN_PAIRS}
    assert not failed.permanent  # a teacher that never answered may answer later: worth a retry


def test_unreadable_input_and_malformed_rows_fail_the_run_with_the_place(
        client: DataRunClient, workers: Callable[..., Worker], fake_teacher: FakeTeacher, tmp_path: Path) -> None:
    workers("a")
    cot = plans(tmp_path, fake_teacher, "fake-good")[Step.COT]
    missing = run_to_end(client, cot, train=str(tmp_path / "nope" / "train.jsonl"))
    assert missing.state == RunState.FAILED
    assert missing.error is not None and "nope/train.jsonl: no such file" in missing.error
    assert missing.permanent  # bad input: the operator does not retry it

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "red shoe", "item_id": "i1", "title": "red shoe", "grade": 4}\n{"query": oops\n')
    malformed = run_to_end(client, cot, train=str(bad), rules=None)
    assert malformed.state == RunState.FAILED
    assert malformed.error is not None and "bad.jsonl:2: not valid JSON" in malformed.error

    with pytest.raises(DataRunError, match="needs an output URI"):
        client.start("cot", {"train": "x.jsonl"})
    refused = httpx.post(f"{client._http.base_url}/v1/runs", json={"kind": "cot", "params": {"output": "/o"}})
    assert refused.status_code == 422 and "needs its input URI" in refused.text
    with pytest.raises(DataRunError, match="HTTP 404"):
        client.get("cot-doesnotexist")
    assert client.find("cot-doesnotexist") is None
    assert client.find(missing.id) == client.get(missing.id)


def test_service_killed_mid_run_is_resumed_after_restart(
        data_service: DataService, redis_server: RedisServer, workers: Callable[..., Worker],
        tmp_path: Path) -> None:
    slow = FakeTeacher(latency=(0.4, 0.6)).start()
    try:
        client = DataRunClient(data_service.url)
        workers("a")
        steps = plans(tmp_path, slow, "fake-good")
        assert run_to_end(client, steps[Step.DATA]).state == RunState.SUCCEEDED
        started = client.start("cot", {**steps[Step.COT].params, "shard_size": 4})
        wait_for("two shards to commit", lambda: client.get(started.id).progress.shards_done >= 2, 120)
        data_service.kill()  # the driver dies with the service; the run stays "running" in Redis
        data_service.start()
        client = DataRunClient(data_service.url)
        done = client.wait(started.id, timeout=180, poll=0.3)
        assert done.state == RunState.SUCCEEDED, done.error
        assert done.attempts == 2
        rows = jsonl(f"{done.output}/cot.jsonl")
        assert Counter(r["pair"]["item_id"] for r in rows) == Counter({r["pair"]["item_id"]: 1 for r in rows})
        assert len(rows) == TRAIN_PAIRS
        assert slow.total() < 2 * TRAIN_PAIRS, "committed shards were not redone"
    finally:
        slow.stop()


def test_healthz_reports_redis(data_service: DataService, redis_server: RedisServer) -> None:
    assert httpx.get(f"{data_service.url}/healthz").json() == {"status": "ok", "redis": "ok"}
    redis_server.stop()
    response = httpx.get(f"{data_service.url}/healthz", timeout=30)
    assert response.status_code == 503 and response.json()["status"] == "unavailable"
