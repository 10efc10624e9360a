"""Real Redis, Celery worker and data-run service processes, for tests and benches.

`RedisServer` runs `redis-server` on a free port in a work dir (append-only file on, as a production
Redis for Celery should have); `Worker` runs `celery -A relmodel.tasks.app worker` in its own process
group (so a test can SIGKILL a whole worker); `DataService` runs `python -m relmodel.tasks.service`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from relmodel.testing.waiting import free_port, stop_group, wait_for

REPO = Path(__file__).resolve().parents[2]
VISIBILITY_TIMEOUT = 5  # seconds; every slow shard in these tests takes well under it


class RedisServer:
    """A real redis-server process; `restart()` keeps port and data dir (AOF), like a pod restart."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port = workdir, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (run hack/ensure-redis.sh)")
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "no"],
            stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        wait_for("redis-server to answer", lambda: _pings(client), 10)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def broker_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "RELMODEL_BROKER_URL": redis_url, "RELMODEL_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
           "RELMODEL_RESTORE_INTERVAL": "1", "RELMODEL_BROKER_OUTAGE_TIMEOUT": "60",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.update(extra)
    return env


class Worker:
    """One `celery worker` process (its own process group: kill() takes its pool children too)."""

    def __init__(self, name: str, redis_url: str, logdir: Path, concurrency: int = 1, pool: str = "prefork") -> None:
        self.name = name
        self.log = logdir / f"worker-{name}.log"
        command = [sys.executable, "-m", "celery", "-A", "relmodel.tasks.app", "worker", "-n", f"{name}@%h",
                   "-c", str(concurrency), "-P", pool, "-Q", "relmodel.shards", "-l", "INFO",
                   "--without-gossip", "--without-mingle", "--without-heartbeat"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                         env=broker_env(redis_url), start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited: {self.log.read_text()[-2000:]}")
            return self.log.exists() and " ready." in self.log.read_text(errors="replace")

        wait_for(f"worker {self.name} to be ready", ready, timeout, every=0.2)

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once (a node or pod lost)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        stop_group(self.proc)


def run_driver(redis_url: str, spec: dict[str, object], **env: str) -> subprocess.Popen[str]:
    """Start the test driver (`run_sharded` in its own process, as a step would run it)."""
    return subprocess.Popen([sys.executable, "-m", "tests.tasks.slow_shards", json.dumps(spec)], cwd=REPO,
                            env=broker_env(redis_url, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


class DataService:
    """The data-run service as a real process (uvicorn), restartable on the same port."""

    def __init__(self, redis_url: str, logdir: Path) -> None:
        self.redis_url, self.port, self.log = redis_url, free_port(), logdir / "service.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import httpx

        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "relmodel.tasks.service", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=REPO, env=broker_env(self.redis_url, RELMODEL_SERVICE_LEASE_SECONDS="3"),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"service exited: {self.log.read_text()[-2000:]}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the data-run service", up, 60, every=0.2)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
