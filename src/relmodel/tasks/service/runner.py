"""Drives data runs: one daemon thread per active run calls the step's `run(params)` (the same entry
point the local executor calls); its `run_sharded` fans the shards out to the Celery workers.

Every state change goes to Redis. The driving replica holds a renewed lease on the run; when the
service restarts (or a replica dies), a sweep adopts runs left unfinished with no lease and drives
them again; committed shards are not redone, so resuming costs only the shards still missing.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from relmodel.errors import RelmodelError
from relmodel.planner import STEP_ENTRY, Step
from relmodel.steps import run_step
from relmodel.tasks.service.metrics import ServiceMetrics
from relmodel.tasks.service.models import INPUT_PARAM, Counts, Progress, RunCreate, RunState, RunStatus
from relmodel.tasks.service.store import RunStore
from relmodel.tasks.shards import ShardProgress, report_progress

log = logging.getLogger("relmodel.tasks.service")
StepRunner = Callable[[dict[str, Any]], dict[str, Any]]
WRITE_INTERVAL = 0.5  # at most this often a progress update goes to Redis


def step_runner(kind: str) -> StepRunner:
    """The `run(params)` of the step module the planner names for this kind."""
    run: StepRunner = importlib.import_module(STEP_ENTRY[Step(kind)]).run
    return run


class RunManager:
    def __init__(self, store: RunStore, metrics: ServiceMetrics, *, max_active: int = 4,
                 lease_seconds: float = 30.0, runner: Callable[[str], StepRunner] = step_runner) -> None:
        self.store, self.metrics, self.runner = store, metrics, runner
        self.lease = lease_seconds
        self.owner = uuid.uuid4().hex[:12]
        self._slots = threading.BoundedSemaphore(max_active)
        self._mine: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    # --- API ---------------------------------------------------------------------------------

    def submit(self, request: RunCreate) -> tuple[RunStatus, bool]:
        """The run for this request, and whether it was (re)started now. A queued, running or
        succeeded run is returned as it is; a failed one starts again (committed shards are kept)."""
        run_id = request.run_id()
        existing = self.store.get(run_id)
        if existing is not None and existing.state != RunState.FAILED:
            return existing, False
        now = time.time()
        key = INPUT_PARAM[request.kind]
        status = RunStatus(
            id=run_id, kind=request.kind, state=RunState.QUEUED, params=request.params,
            input=request.params.get(key) if key else None, output=request.params["output"],
            attempts=(existing.attempts if existing else 0), created_at=existing.created_at if existing else now,
            updated_at=now)
        self.store.put(status)
        self._start(run_id)
        return status, True

    def start(self) -> None:
        """Adopt orphaned runs now and every lease period (another replica, or our previous life)."""
        self._sweeper = threading.Thread(target=self._sweep_forever, name="run-sweeper", daemon=True)
        self._sweeper.start()

    def stop(self) -> None:
        self._stop.set()

    def adopt_orphans(self) -> list[str]:
        adopted = []
        for status in self.store.unfinished():
            with self._lock:
                mine = status.id in self._mine
            if not mine and not self.store.leased(status.id):
                log.info("adopting run %s (%s), left %s", status.id, status.kind, status.state.value)
                self._start(status.id)
                adopted.append(status.id)
        return adopted

    # --- driving -----------------------------------------------------------------------------

    def _sweep_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.adopt_orphans()
            except RedisError as exc:
                log.warning("cannot list runs to adopt: %s", exc)
            self._stop.wait(self.lease)

    def _start(self, run_id: str) -> None:
        with self._lock:
            if run_id in self._mine:
                return
            self._mine.add(run_id)
        threading.Thread(target=self._drive, args=(run_id,), name=f"run-{run_id}", daemon=True).start()

    def _drive(self, run_id: str) -> None:
        try:
            with self._slots:
                if self.store.acquire(run_id, self.owner, self.lease):
                    try:
                        self._drive_leased(run_id)
                    finally:
                        self._quietly(lambda: self.store.release(run_id, self.owner))
        except RedisError as exc:  # Redis gone before we could start: a later sweep adopts the run
            log.warning("run %s: cannot reach Redis: %s", run_id, exc)
        finally:
            with self._lock:
                self._mine.discard(run_id)

    def _drive_leased(self, run_id: str) -> None:
        status = self.store.get(run_id)
        if status is None or status.state.finished:
            return
        now = time.time()
        status = status.model_copy(update={"state": RunState.RUNNING, "started_at": now, "updated_at": now,
                                           "attempts": status.attempts + 1, "error": None})
        self.store.put(status)
        tracker = _Progress(self, status)
        heartbeat = threading.Thread(target=self._renew, args=(run_id, tracker), daemon=True)
        heartbeat.start()
        self.metrics.active.labels(status.kind).inc()
        started = time.monotonic()
        try:
            with report_progress(tracker.update):
                result = run_step(self.runner(status.kind), status.params)
            final = tracker.finish(RunState.SUCCEEDED, result=result)
        except Exception as exc:  # any failure is the run's, reported in its status
            message = str(exc) if isinstance(exc, RelmodelError) else f"{type(exc).__name__}: {exc}"
            log.warning("run %s failed: %s", run_id, message)
            final = tracker.finish(RunState.FAILED, error=message or type(exc).__name__,
                                   permanent=isinstance(exc, RelmodelError))
        finally:
            tracker.stopped.set()
            self.metrics.active.labels(status.kind).dec()
        self.metrics.seconds.labels(status.kind).observe(time.monotonic() - started)
        self.metrics.runs.labels(status.kind, final.state.value).inc()
        self._put_until_stored(final)

    def _renew(self, run_id: str, tracker: _Progress) -> None:
        while not tracker.stopped.wait(self.lease / 3):
            self._quietly(lambda: self.store.renew(run_id, self.owner, self.lease))
            tracker.flush()

    def _put_until_stored(self, status: RunStatus) -> None:
        """The final state must land: retry through a Redis restart, for up to a lease period."""
        deadline = time.monotonic() + max(self.lease, 10.0)
        while True:
            try:
                self.store.put(status)
                return
            except RedisError as exc:
                if time.monotonic() > deadline:
                    log.error("run %s: final state %s not stored: %s", status.id, status.state.value, exc)
                    return
                time.sleep(1.0)

    @staticmethod
    def _quietly(call: Callable[[], object]) -> None:
        try:
            call()
        except RedisError as exc:
            log.warning("Redis unreachable: %s", exc)


class _Progress:
    """The driver's view of its run: shard progress in, throttled status writes out."""

    def __init__(self, manager: RunManager, status: RunStatus) -> None:
        self.manager, self.status = manager, status
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._written = 0.0
        self._dirty = False
        self._seen = (status.progress.shards_done, status.counts.rows, status.counts.rejected)

    def update(self, progress: ShardProgress) -> None:
        kind = self.status.kind
        rows, rejected = int(progress.counts.get("rows", 0)), int(progress.counts.get("rejected", 0))
        metrics = self.manager.metrics
        done0, rows0, rejected0 = self._seen
        metrics.shards.labels(kind).inc(max(0, progress.done - done0))
        metrics.rows.labels(kind, "accepted").inc(max(0, rows - rows0))
        metrics.rows.labels(kind, "rejected").inc(max(0, rejected - rejected0))
        self._seen = (progress.done, rows, rejected)
        with self._lock:
            self.status = self.status.model_copy(update={
                "progress": Progress(shards_done=progress.done, shards_total=progress.total),
                "counts": Counts(rows=rows, rejected=rejected, errors_by_reason=dict(progress.reasons)),
                "updated_at": time.time()})
            self._dirty = True
        if time.monotonic() - self._written >= WRITE_INTERVAL or progress.done == progress.total:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            status, self._dirty = self.status, False
        self._written = time.monotonic()
        try:
            self.manager.store.put(status)
        except RedisError as exc:  # the next update (or the final write) carries it
            log.warning("run %s: progress not stored: %s", status.id, exc)
            with self._lock:
                self._dirty = True

    def finish(self, state: RunState, *, result: dict[str, Any] | None = None, error: str | None = None,
               permanent: bool = False) -> RunStatus:
        with self._lock:
            progress = self.status.progress
            if progress.shards_total == 0 and state == RunState.SUCCEEDED:  # a step without shards
                progress = Progress(shards_done=1, shards_total=1)
            now = time.time()
            self.status = self.status.model_copy(update={
                "state": state, "result": result, "error": error, "permanent": permanent, "progress": progress,
                "finished_at": now, "updated_at": now})
            self._dirty = False
            return self.status
