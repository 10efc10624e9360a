"""The Celery application. Broker and backend come from the environment; without a broker (the
local executor) tasks run eagerly in the calling process.

Environment (read once, at import, by every process: workers, the data-run service, the CLI):

    RELMODEL_BROKER_URL          redis://host:6379/0; unset -> eager, in process
    RELMODEL_RESULT_BACKEND      defaults to the broker URL
    RELMODEL_VISIBILITY_TIMEOUT  seconds before an unacked shard (its worker died) is redelivered;
                                 must exceed the longest shard (default 3600)
    RELMODEL_RESTORE_INTERVAL    seconds between sweeps for such shards (default 10)
"""

from __future__ import annotations

import os

from celery import Celery

SHARD_QUEUE = "relmodel.shards"

BROKER_URL = os.environ.get("RELMODEL_BROKER_URL") or None
EAGER = BROKER_URL is None


def _transport_options() -> dict[str, float | int]:
    return {
        "visibility_timeout": float(os.environ.get("RELMODEL_VISIBILITY_TIMEOUT", "3600")),
        "unacked_restore_interval": float(os.environ.get("RELMODEL_RESTORE_INTERVAL", "10")),
        "unacked_restore_throttle": 1,
        # A publish on a connection to a Redis that vanished fails instead of hanging forever.
        "socket_timeout": 30,
        "socket_connect_timeout": 5,
    }


app = Celery("relmodel", include=["relmodel.tasks.shards"])
app.conf.update(
    broker_url=BROKER_URL or "memory://",
    result_backend=os.environ.get("RELMODEL_RESULT_BACKEND") or BROKER_URL or "cache+memory://",
    broker_transport_options=_transport_options(),
    result_backend_transport_options={"socket_timeout": 30, "socket_connect_timeout": 5},
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,  # a worker rides out a Redis restart instead of exiting
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_queue=SHARD_QUEUE,
    task_track_started=True,  # the driver tells "queued" from "running" (and counts progress)
    result_expires=7 * 24 * 3600,
    # A shard is redelivered if its worker dies mid-task; shard outputs are committed atomically
    # under deterministic names, so a redelivered shard never duplicates rows.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    task_always_eager=EAGER,
    task_eager_propagates=True,
)


def configure(broker_url: str | None, result_backend: str | None = None) -> None:
    """Point this process's Celery app at a broker after import (the data-run service's Settings);
    None keeps shards in process."""
    global BROKER_URL, EAGER
    if broker_url == BROKER_URL and result_backend is None:
        return
    BROKER_URL, EAGER = broker_url, broker_url is None
    app.conf.update(
        broker_url=broker_url or "memory://",
        result_backend=result_backend or broker_url or "cache+memory://",
        task_always_eager=EAGER,
    )
