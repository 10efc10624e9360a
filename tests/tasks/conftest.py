"""Fixtures with real Redis and real Celery worker processes for the worker and service tests.

`redis_server` starts `redis-server` on a random free port in a temp dir and stops it after;
`workers` starts `celery worker` subprocesses against it; `data_service` runs the data-run service
(tests/tasks/processes.py has the process classes). The only fake is the teacher LLM
(tests/tasks/fake_teacher.py), an outside service.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.tasks.fake_teacher import FakeTeacher
from tests.tasks.processes import DataService, RedisServer, Worker


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(workdir)
    server.start()
    yield server
    server.stop(signal.SIGKILL)


@pytest.fixture
def workers(redis_server: RedisServer, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """`workers(name, concurrency=1)` starts a ready worker; all are stopped after the test."""
    started: list[Worker] = []

    def start(name: str, concurrency: int = 1, wait: bool = True) -> Worker:
        worker = Worker(name, redis_server.url, tmp_path, concurrency)
        started.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.kill()


@pytest.fixture
def fake_teacher() -> Iterator[FakeTeacher]:
    teacher = FakeTeacher(latency=(0.05, 0.1)).start()
    yield teacher
    teacher.stop()


@pytest.fixture
def data_service(redis_server: RedisServer, tmp_path: Path) -> Iterator[DataService]:
    service = DataService(redis_server.url, tmp_path)
    service.start()
    yield service
    service.kill()
