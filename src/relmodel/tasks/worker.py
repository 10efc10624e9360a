"""`relmodel worker`: a Celery worker for the data-run shards (RAG CoT, pass@N sampling, difficulty).

    RELMODEL_BROKER_URL=redis://redis:6379/0 python -m relmodel.tasks.worker --concurrency 2

One worker process per core is the usual setting for model shards (each process loads the policy
once and keeps it); CoT shards are I/O-bound on the teacher and bound their own concurrency.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence

from relmodel.errors import RelmodelError
from relmodel.tasks.app import BROKER_URL, SHARD_QUEUE, app


def worker_argv(concurrency: int = 1, queues: Sequence[str] = (SHARD_QUEUE,), loglevel: str = "INFO",
                pool: str = "prefork", hostname: str | None = None) -> list[str]:
    """The `celery worker` command line for these settings (what the worker image runs)."""
    if concurrency < 1:
        raise RelmodelError(f"worker concurrency must be at least 1, got {concurrency}")
    if not queues:
        raise RelmodelError("a worker needs at least one queue")
    return [
        "worker", f"--concurrency={concurrency}", f"--queues={','.join(queues)}", f"--loglevel={loglevel}",
        f"--pool={pool}", f"--hostname={hostname or f'relmodel@{socket.gethostname()}'}",
        # Shards are long and acked late: no heartbeats/gossip between workers is needed, and
        # the queue, not a peer, is the source of truth.
        "--without-gossip", "--without-mingle",
    ]


def run_worker(concurrency: int = 1, queues: Sequence[str] = (SHARD_QUEUE,), loglevel: str = "INFO",
               pool: str = "prefork", hostname: str | None = None) -> None:
    """Run a worker until it is stopped (SIGTERM: finish the current shards, then exit)."""
    if BROKER_URL is None:
        raise RelmodelError("RELMODEL_BROKER_URL is not set: a worker needs a broker, e.g. redis://localhost:6379/0")
    app.worker_main(worker_argv(concurrency, queues, loglevel, pool, hostname))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a relmodel Celery worker (needs RELMODEL_BROKER_URL).")
    parser.add_argument("--concurrency", "-c", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--queues", "-Q", default=SHARD_QUEUE, help="comma-separated queues")
    parser.add_argument("--loglevel", "-l", default="INFO")
    parser.add_argument("--pool", "-P", default="prefork", choices=["prefork", "solo", "threads"])
    parser.add_argument("--hostname", "-n", default=None)
    args = parser.parse_args(argv)
    try:
        run_worker(args.concurrency, [q for q in args.queues.split(",") if q], args.loglevel, args.pool,
                   args.hostname)
    except RelmodelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
