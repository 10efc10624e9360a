"""The Celery application. Broker and backend come from the environment; without them (the local
executor) tasks run eagerly in the calling process."""

from __future__ import annotations

import os

from celery import Celery

app = Celery("relmodel", include=["relmodel.tasks.shards"])
app.conf.update(
    broker_url=os.environ.get("RELMODEL_BROKER_URL", "memory://"),
    result_backend=os.environ.get("RELMODEL_RESULT_BACKEND", "cache+memory://"),
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # A shard is redelivered if its worker dies mid-task; shard outputs are written atomically
    # under deterministic names, so a redelivered shard never duplicates rows.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_always_eager=os.environ.get("RELMODEL_BROKER_URL") is None,
)
