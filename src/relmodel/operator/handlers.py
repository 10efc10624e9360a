"""kopf wiring: settings, the level-based resync loop, and the events that only speed it up.

No finalizers: there are no delete handlers, timers or daemons (kopf forces a finalizer for those);
children go away through owner references. The periodic resync is an asyncio task started at
startup, which lists every RelevanceModel and reconciles it; create/update/resume and child
(Job, Deployment) events reconcile the object at once. Reconciliations of one object never overlap,
and triggers that arrive while one runs are coalesced into one more run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

import kopf

from relmodel.operator import children as ch
from relmodel.operator.crd import PLURAL, VERSION
from relmodel.operator.kube import Kube, post_event
from relmodel.operator.observe import format_time
from relmodel.operator.reconcile import OperatorSettings, Reconciler
from relmodel.spec import API_GROUP
from relmodel.tasks.service.client import DataRunClient

log = logging.getLogger("relmodel.operator")

#: Set by run_operator(); otherwise read from RELMODEL_OPERATOR_* (e.g. under `kopf run`).
SETTINGS: OperatorSettings | None = None


def settings_from_env() -> OperatorSettings:
    env = os.environ
    images = ch.Images(
        trainer=env.get("RELMODEL_TRAINER_IMAGE", ch.Images.trainer),
        cpu_engine=env.get("RELMODEL_ENGINE_IMAGE", ch.Images.cpu_engine),
        gateway=env.get("RELMODEL_GATEWAY_IMAGE", ch.Images.gateway),
        vllm=env.get("RELMODEL_VLLM_IMAGE", ch.Images.vllm),
    )
    return OperatorSettings(
        namespace=env.get("RELMODEL_OPERATOR_NAMESPACE") or None,
        resync_seconds=float(env.get("RELMODEL_OPERATOR_RESYNC_SECONDS", "15")),
        result_grace_seconds=float(env.get("RELMODEL_OPERATOR_RESULT_GRACE_SECONDS", "60")),
        images=images,
        data_runs_url=env.get("RELMODEL_DATA_RUNS_URL") or None,
    )


class Runtime:
    """The per-process state kept in kopf's memo: the reconciler and the per-object coalescing."""

    def __init__(self, reconciler: Reconciler, settings: OperatorSettings) -> None:
        self.reconciler = reconciler
        self.settings = settings
        self.locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.pending: set[tuple[str, str]] = set()
        self.resync: asyncio.Task[None] | None = None

    async def kick(self, namespace: str, name: str) -> Exception | None:
        """Reconcile now (or right after the run in progress); return the error of the last run, if any."""
        key = (namespace, name)
        self.pending.add(key)
        lock = self.locks.setdefault(key, asyncio.Lock())
        if lock.locked():
            return None
        error: Exception | None = None
        async with lock:
            while key in self.pending:
                self.pending.discard(key)
                try:
                    await asyncio.to_thread(self.reconciler.reconcile, namespace, name, time.time())
                    error = None
                except Exception as exc:  # never crash the operator: report and let resync retry
                    log.exception("reconcile %s/%s failed", namespace, name)
                    error = exc
        return error

    async def resync_loop(self) -> None:
        """Level-based: every `resync_seconds`, reconcile every RelevanceModel in scope."""
        ns = self.settings.namespace
        path = (f"/apis/{API_GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}" if ns
                else f"/apis/{API_GROUP}/{VERSION}/{PLURAL}")
        while True:
            try:
                items = (await asyncio.to_thread(self.reconciler.kube.request, "GET", path))["items"]
                await asyncio.gather(*(self.kick(o["metadata"]["namespace"], o["metadata"]["name"]) for o in items))
            except Exception:
                log.exception("resync failed")
            await asyncio.sleep(self.settings.resync_seconds)


def _emitter(kube: Kube) -> Any:
    def emit(body: Any, type_: str, reason: str, message: str) -> None:
        try:
            post_event(kube, body, type_, reason, message, format_time(time.time()))
        except Exception as exc:  # an Event is best effort
            log.warning("cannot post event %s: %s", reason, exc)
        log.info("%s/%s %s %s: %s", body["metadata"]["namespace"], body["metadata"]["name"], type_, reason, message)
    return emit


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf state in annotations under relmodel.dev/, our own finalizer name, bounded watches."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration")
    settings.persistence.finalizer = f"{API_GROUP}/finalizer"
    settings.posting.level = logging.ERROR  # Events come from the reconciler, one per transition
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.execution.max_workers = 8
    op = SETTINGS or settings_from_env()
    if op.namespace is not None:
        # One namespace: no cluster-wide namespace/CRD scans, which a namespaced Role cannot do.
        settings.scanning.disabled = True
    kube = await asyncio.to_thread(Kube)
    runs = DataRunClient(op.data_runs_url) if op.data_runs_url else None
    log.info("data steps run %s", f"on the data-run service at {op.data_runs_url}" if runs else "as Jobs")
    runtime = Runtime(Reconciler(kube, op, _emitter(kube), runs=runs), op)
    runtime.resync = asyncio.create_task(runtime.resync_loop(), name="relmodel-resync")
    memo["relmodel"] = runtime


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = memo.get("relmodel")
    if runtime is not None and runtime.resync is not None:
        runtime.resync.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runtime.resync


@kopf.on.resume(API_GROUP, VERSION, PLURAL, retries=5, backoff=5, timeout=120)
@kopf.on.create(API_GROUP, VERSION, PLURAL, retries=5, backoff=5, timeout=120)
@kopf.on.update(API_GROUP, VERSION, PLURAL, field="spec", retries=5, backoff=5, timeout=120)
async def on_change(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    """A new or changed spec (or an operator restart): reconcile now rather than at the next resync."""
    runtime: Runtime = memo["relmodel"]
    if namespace is None:
        return
    error = await runtime.kick(namespace, name)
    if error is not None:
        raise kopf.TemporaryError(f"reconcile failed: {error}", delay=5)


@kopf.on.event("batch", "v1", "jobs", labels={ch.LABEL_MODEL: kopf.PRESENT})
@kopf.on.event("apps", "v1", "deployments", labels={ch.LABEL_MODEL: kopf.PRESENT})
async def on_child(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A child changed (a Job finished, a Deployment became Available): reconcile its owner now."""
    if type is None:  # the initial listing: the resync covers it
        return
    runtime: Runtime = memo["relmodel"]
    owner = body.metadata.labels.get(ch.LABEL_MODEL)
    if owner and body.metadata.namespace:
        await runtime.kick(body.metadata.namespace, owner)
