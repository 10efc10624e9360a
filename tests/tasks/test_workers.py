"""Sharded runs on real Celery workers over a real Redis: counts, exactly-once output after a worker
or its pool child is SIGKILLed mid-shard, a Redis restart mid-run, and shard errors."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pytest

from relmodel.tasks import shards
from relmodel.testing.waiting import wait_for
from tests.tasks.processes import RedisServer, Worker, run_driver

pytestmark = pytest.mark.timeout(240)


def rows(n: int, bad: Collection[int] = (), explode: Collection[int] = ()) -> list[dict[str, Any]]:
    return [{"id": f"r{i:03d}", **({"bad": True} if i in bad else {}), **({"explode": "boom"} if i in explode else {})}
            for i in range(n)]


def spec(tmp_path: Path, data: list[dict[str, Any]], shard_size: int, delay: float = 0.0) -> dict[str, Any]:
    trace = tmp_path / "trace"
    trace.mkdir(exist_ok=True)
    return {"rows": data, "shard_size": shard_size, "output": str(tmp_path / "out"), "name": "echo",
            "params": {"delay": delay, "trace_dir": str(trace)}}


def finish(driver: Any, timeout: float = 150) -> dict[str, Any]:
    out, err = driver.communicate(timeout=timeout)
    assert driver.returncode == 0, f"driver failed: {err[-3000:]}"
    return dict(json.loads(out.strip().splitlines()[-1]))


def merged(tmp_path: Path, kind: str = "") -> list[dict[str, Any]]:
    path = tmp_path / "out" / f"echo{kind}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def starts(tmp_path: Path) -> list[tuple[str, int]]:
    """(first row id, pid) of every shard execution that started, in no particular order."""
    return [(p.name.split("-")[1], int(p.name.split("-")[2])) for p in (tmp_path / "trace").glob("started-*")]


def first_start(tmp_path: Path) -> tuple[str, int]:
    """Wait until some shard started; its first row id and the pid of the pool process running it."""
    wait_for("a shard to start", lambda: starts(tmp_path), 60)
    return starts(tmp_path)[0]


def test_run_completes_on_two_workers_with_expected_counts(
        redis_server: RedisServer, workers: Callable[..., Worker], tmp_path: Path) -> None:
    workers("a")
    workers("b")
    data = rows(40, bad={3, 17, 31})
    result = finish(run_driver(redis_server.url, spec(tmp_path, data, shard_size=4, delay=0.02)))
    assert result["totals"] == {"rows": 37, "rejected": 3, "seen": 40}
    assert [r["id"] for r in merged(tmp_path)] == [r["id"] for r in data if not r.get("bad")]
    assert [r["id"] for r in merged(tmp_path, ".rejected")] == ["r003", "r017", "r031"]
    assert len({r["pid"] for r in merged(tmp_path)}) == 2, "both workers processed shards"

    # Re-running the same run processes nothing again and writes the same output.
    before = len(starts(tmp_path))
    again = finish(run_driver(redis_server.url, spec(tmp_path, data, shard_size=4, delay=0.02)))
    assert again["totals"] == result["totals"]
    assert len(starts(tmp_path)) == before
    assert [r["id"] for r in merged(tmp_path)] == [r["id"] for r in data if not r.get("bad")]


def test_worker_sigkilled_mid_shard_is_redelivered_and_rows_appear_once(
        redis_server: RedisServer, workers: Callable[..., Worker], tmp_path: Path) -> None:
    pool = {w.proc.pid: w for w in (workers("a"), workers("b"))}
    data = rows(12)
    driver = run_driver(redis_server.url, spec(tmp_path, data, shard_size=3, delay=0.5))  # 1.5 s per shard
    first_id, pid = first_start(tmp_path)
    victim = pool[os.getpgid(pid)]
    victim.kill()  # the worker and its pool child, mid-shard: the message stays unacked in Redis
    killed_at = time.monotonic()
    finish(driver)
    survivor = next(w for w in pool.values() if w is not victim)
    redone = [p for shard, p in starts(tmp_path) if shard == first_id and p != pid]
    assert redone and all(os.getpgid(p) == survivor.proc.pid for p in redone), "the survivor redid the shard"
    out = merged(tmp_path)
    assert Counter(r["id"] for r in out) == Counter(r["id"] for r in data), "every row exactly once"
    assert {r["pid"] for r in out if r["id"] == first_id} <= set(redone), "the killed attempt left no rows"
    print(f"redelivered {first_id} and finished {time.monotonic() - killed_at:.1f}s after the kill")


def test_pool_child_sigkilled_mid_shard_is_retried_by_the_same_worker(
        redis_server: RedisServer, workers: Callable[..., Worker], tmp_path: Path) -> None:
    worker = workers("solo-host")
    data = rows(6)
    driver = run_driver(redis_server.url, spec(tmp_path, data, shard_size=3, delay=0.5))
    first_id, pid = first_start(tmp_path)
    os.kill(pid, signal.SIGKILL)  # only the child: the worker sees WorkerLostError and sends the shard again
    finish(driver)
    assert len([p for shard, p in starts(tmp_path) if shard == first_id]) >= 2
    assert Counter(r["id"] for r in merged(tmp_path)) == Counter(r["id"] for r in data)
    assert worker.proc.poll() is None


def test_redis_restart_mid_run_finishes_with_every_row_once(
        redis_server: RedisServer, workers: Callable[..., Worker], tmp_path: Path) -> None:
    workers("a")
    workers("b")
    data = rows(16)
    driver = run_driver(redis_server.url, spec(tmp_path, data, shard_size=2, delay=0.4))
    wait_for("shards to start", lambda: len(starts(tmp_path)) >= 2, 60)
    redis_server.restart(down_for=2.0)
    result = finish(driver, timeout=180)
    assert result["totals"]["rows"] == 16
    assert Counter(r["id"] for r in merged(tmp_path)) == Counter(r["id"] for r in data)


def test_redis_gone_for_good_fails_the_run_clearly_and_writes_no_output(
        redis_server: RedisServer, workers: Callable[..., Worker], tmp_path: Path) -> None:
    workers("a")
    data = rows(8)
    job = spec(tmp_path, data, shard_size=2, delay=0.5)
    driver = run_driver(redis_server.url, job, RELMODEL_BROKER_OUTAGE_TIMEOUT="5")
    wait_for("a shard to start", lambda: starts(tmp_path), 60)
    redis_server.stop(signal.SIGKILL)
    _, err = driver.communicate(timeout=90)
    assert driver.returncode == 1
    assert "lost the broker" in err, err[-2000:]
    assert not (tmp_path / "out" / "echo.jsonl").exists(), "no merged output from a failed run"


def test_a_shard_that_raises_fails_the_run_with_the_row_error(
        redis_server: RedisServer, workers: Callable[..., Worker], tmp_path: Path) -> None:
    workers("a")
    driver = run_driver(redis_server.url, spec(tmp_path, rows(9, explode={5}), shard_size=3))
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 1
    assert "echo: shard 1 failed: ValueError: row r005: cannot process 'boom'" in err, err[-2000:]
    assert not (tmp_path / "out" / "echo.jsonl").exists()


def test_eager_run_without_a_broker_commits_each_shard_once(tmp_path: Path) -> None:
    """The local executor's path: the same shard code in process, markers and merge alike."""
    data = rows(10, bad={2})
    job = spec(tmp_path, data, shard_size=4)
    seen: list[shards.ShardProgress] = []
    with shards.report_progress(seen.append):
        totals = shards.run_sharded("tests.tasks.slow_shards:slow_echo", data, job["params"], job["output"],
                                    "echo", 4)
    assert totals == {"rows": 9, "rejected": 1, "seen": 10}
    assert [(p.done, p.total) for p in seen] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert seen[-1].reasons == {"bad_row": 1}
    shards.run_sharded("tests.tasks.slow_shards:slow_echo", data, job["params"], job["output"], "echo", 4)
    assert len(starts(tmp_path)) == 3, "a re-run reprocesses no committed shard"
    # A different partition of the same rows is new work: the old markers do not match it.
    shards.run_sharded("tests.tasks.slow_shards:slow_echo", data, job["params"], job["output"], "echo", 5)
    assert [r["id"] for r in merged(tmp_path)] == [r["id"] for r in data if not r.get("bad")]
