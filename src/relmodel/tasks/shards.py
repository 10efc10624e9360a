"""Sharded data runs: split rows into shards, process each shard in one idempotent task that
commits its output atomically, then merge the shard outputs in order.

A shard commits in two steps: its rows go to files tagged with a fresh attempt id, then a marker
`shards/<name>-NNNNN.done.json` naming that attempt (and a fingerprint of the shard's input) is
written atomically, last. Readers only follow markers, so a shard redelivered after its worker
died, processed twice concurrently, or re-run later contributes its rows exactly once.

`run_sharded` runs the same shard code two ways: in process when no broker is configured (the
local executor), or as a Celery group on the workers when `RELMODEL_BROKER_URL` is set, polling
until every shard committed and riding out a Redis restart (lost shards are sent again).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import importlib
import json
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from celery import group
from celery.result import AsyncResult
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from relmodel import storage
from relmodel.errors import RelmodelError
from relmodel.tasks.app import app

log = logging.getLogger("relmodel.tasks.shards")

# A shard processor: (rows, params) -> {"rows": output rows, "rejected": rows, "counts": {...}}.
# Rejected rows should carry a "reason" ("kind: detail"); the run counts them by kind.
ShardFn = Callable[[list[dict[str, Any]], dict[str, Any]], dict[str, Any]]

POLL_SECONDS = 0.25
MARKER_CHECK_SECONDS = 5.0  # how often the driver also looks for committed markers on storage
# Errors worth retrying with backoff (a flaky network or disk); anything else fails the shard.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError)
BROKER_ERRORS = (OperationalError, RedisConnectionError, RedisTimeoutError, OSError)


class ShardError(RelmodelError):
    """A shard failed for good (bad data, a bug, or the broker stayed away); the run fails."""


@dataclass(frozen=True)
class ShardProgress:
    """What a data run has done so far: shards committed of total, summed counts, reject reasons."""

    name: str
    done: int
    total: int
    counts: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)


ProgressFn = Callable[[ShardProgress], None]
_listener: contextvars.ContextVar[ProgressFn | None] = contextvars.ContextVar("shard_progress", default=None)


@contextlib.contextmanager
def report_progress(listener: ProgressFn) -> Iterator[None]:
    """Send the progress of every `run_sharded` called inside this block (this thread) to `listener`."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


# --- where shard outputs live -------------------------------------------------------------------


def shard_uri(output: str, name: str, index: int, suffix: str = "") -> str:
    return storage.join(output, "shards", f"{name}{suffix}-{index:05d}.jsonl")


def marker_uri(output: str, name: str, index: int) -> str:
    return storage.join(output, "shards", f"{name}-{index:05d}.done.json")


def attempt_uri(output: str, name: str, index: int, attempt: str, kind: str) -> str:
    return storage.join(output, "shards", f"{name}-{index:05d}.{attempt}.{kind}.jsonl")


def fingerprint(fn_path: str, rows: Sequence[dict[str, Any]], params: dict[str, Any]) -> str:
    """Identifies a shard's work: a marker for other rows or params (a re-partitioned re-run) is stale."""
    payload = json.dumps([fn_path, list(rows), params], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def read_marker(output: str, name: str, index: int, expected: str | None = None) -> dict[str, Any] | None:
    """The committed shard's summary, or None if it has not committed (for these rows)."""
    uri = marker_uri(output, name, index)
    if not storage.exists(uri):
        return None
    marker = dict(json.loads(storage.read_text(uri)))
    if expected is not None and marker.get("fingerprint") != expected:
        return None
    return marker


# --- one shard ----------------------------------------------------------------------------------


def load_shard_fn(fn_path: str) -> ShardFn:
    module, _, func = fn_path.partition(":")
    if not module or not func:
        raise RelmodelError(f"shard function {fn_path!r} is not 'module:function'")
    try:
        fn: ShardFn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise RelmodelError(f"shard function {fn_path!r} cannot be loaded: {exc}") from exc
    return fn


def process(fn_path: str, rows: list[dict[str, Any]], params: dict[str, Any], output: str, name: str,
            index: int) -> dict[str, Any]:
    """Process one shard unless it already committed; returns its summary (counts, reasons)."""
    expected = fingerprint(fn_path, rows, params)
    done = read_marker(output, name, index, expected)
    if done is not None:
        return _summary(index, done)
    result = load_shard_fn(fn_path)(rows, params)
    out_rows, rejected = list(result.get("rows", [])), list(result.get("rejected", []))
    attempt = f"{os.getpid()}{uuid.uuid4().hex[:6]}"
    _write_rows(attempt_uri(output, name, index, attempt, "rows"), out_rows)
    _write_rows(attempt_uri(output, name, index, attempt, "rejected"), rejected)
    extra = {k: v for k, v in dict(result.get("counts", {})).items()
             if isinstance(v, int | float) and not isinstance(v, bool)}
    marker = {
        "fingerprint": expected, "attempt": attempt,
        "counts": {**extra, "rows": len(out_rows), "rejected": len(rejected)},
        "reasons": dict(Counter(reason_kind(row) for row in rejected)),
    }
    storage.write_text(marker_uri(output, name, index), json.dumps(marker, sort_keys=True))  # the commit
    return _summary(index, marker)


def reason_kind(row: dict[str, Any]) -> str:
    """The kind of a rejected row's reason ("format: no grade" -> "format"): a bounded label set."""
    reason = str(row.get("reason") or "unknown")
    return reason.split(":", 1)[0].strip()[:64] or "unknown"


def _summary(index: int, marker: dict[str, Any]) -> dict[str, Any]:
    return {"index": index, "counts": dict(marker.get("counts", {})), "reasons": dict(marker.get("reasons", {}))}


# A child process killed mid-shard (OOM, SIGKILL) sends the shard again, at most `max_retries` times,
# so a shard that always kills its worker fails the run instead of looping; a whole worker lost
# leaves the message unacked and Redis redelivers it after the visibility timeout.
@app.task(name="relmodel.process_shard", bind=True, acks_late=True, reject_on_worker_lost=True,
          retry_on_worker_lost=True, default_retry_delay=1, max_retries=3,
          autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, retry_backoff_max=60, retry_jitter=True)
def process_shard(self: Any, fn_path: str, rows: list[dict[str, Any]], params: dict[str, Any], output: str,
                  name: str, index: int) -> dict[str, Any]:
    """Celery task: process one shard (idempotent: a committed shard returns its summary at once)."""
    return process(fn_path, rows, params, output, name, index)


# --- a whole run --------------------------------------------------------------------------------


def run_sharded(fn_path: str, rows: Sequence[dict[str, Any]], params: dict[str, Any], output: str,
                name: str, shard_size: int) -> dict[str, Any]:
    """Process `rows` in shards (in process without a broker, on the workers with one), merge the
    outputs into `<output>/<name>.jsonl` and `<output>/<name>.rejected.jsonl`, return summed counts."""
    size = max(1, int(shard_size))
    shards = [list(rows[i : i + size]) for i in range(0, len(rows), size)] or [[]]
    tracker = _Tracker(name, len(shards), _listener.get())
    if app.conf.task_always_eager:
        for index, shard in enumerate(shards):
            tracker.add(process(fn_path, shard, params, output, name, index))
    else:
        _run_on_workers(fn_path, shards, params, output, name, tracker)
    merge_shards(output, name, len(shards))
    return dict(tracker.counts)


def merge_shards(output: str, name: str, count: int) -> None:
    """Concatenate the committed attempts of shards 0..count-1, in order, atomically."""
    markers = []
    for index in range(count):
        marker = read_marker(output, name, index)
        if marker is None:
            raise ShardError(f"{name}: shard {index} has not committed; cannot merge")
        markers.append((index, str(marker["attempt"])))
    for kind, target in (("rows", f"{name}.jsonl"), ("rejected", f"{name}.rejected.jsonl")):
        with storage.atomic_write(storage.join(output, target)) as handle:
            for index, attempt in markers:
                handle.write(storage.read_text(attempt_uri(output, name, index, attempt, kind)))


class _Tracker:
    """Sums shard summaries and tells the progress listener."""

    def __init__(self, name: str, total: int, listener: ProgressFn | None) -> None:
        self.name, self.total, self.listener = name, total, listener
        self.done = 0
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.report()

    def add(self, summary: dict[str, Any]) -> None:
        self.done += 1
        self.counts.update(summary.get("counts", {}))
        self.reasons.update(summary.get("reasons", {}))
        self.report()

    def report(self) -> None:
        if self.listener is not None:
            self.listener(ShardProgress(self.name, self.done, self.total, dict(self.counts), dict(self.reasons)))


def _run_on_workers(fn_path: str, shards: list[list[dict[str, Any]]], params: dict[str, Any], output: str,
                    name: str, tracker: _Tracker) -> None:
    """Send the uncommitted shards as a Celery group and wait until each one committed."""
    prints = [fingerprint(fn_path, shard, params) for shard in shards]
    pending: dict[int, AsyncResult | None] = {}
    for index, print_ in enumerate(prints):
        done = read_marker(output, name, index, print_)
        if done is not None:
            tracker.add(_summary(index, done))
        else:
            pending[index] = None

    def send(indices: list[int]) -> None:
        job = group(process_shard.s(fn_path, shards[i], params, output, name, i) for i in indices)
        for i, result in zip(indices, job.apply_async().results, strict=True):
            pending[i] = result

    outage = float(os.environ.get("RELMODEL_BROKER_OUTAGE_TIMEOUT", "120"))
    broker = _RedisIdentity()
    last_ok, last_scan = time.monotonic(), time.monotonic()
    unsent = list(pending)
    while pending:
        try:
            if unsent:
                send(unsent)
                unsent = []
            if broker.restarted():
                log.warning("%s: Redis restarted; sending the %d uncommitted shards again", name, len(pending))
                unsent = list(pending)
                continue
            scan = time.monotonic() - last_scan > MARKER_CHECK_SECONDS
            last_scan = time.monotonic() if scan else last_scan
            for index in list(pending):
                summary = _poll(pending[index], output, name, index, prints[index], scan)
                if summary is not None:
                    del pending[index]
                    tracker.add(summary)
            last_ok = time.monotonic()
        except BROKER_ERRORS as exc:
            if time.monotonic() - last_ok > outage:
                raise ShardError(f"{name}: lost the broker for more than {outage:.0f}s: {exc}") from exc
            log.warning("%s: broker unreachable (%s); retrying", name, exc)
            time.sleep(1.0)
            continue
        if pending:
            time.sleep(POLL_SECONDS)


def _poll(result: AsyncResult | None, output: str, name: str, index: int, expected: str,
          scan: bool) -> dict[str, Any] | None:
    """The shard's summary once it committed; raises ShardError when it failed for good."""
    if result is not None:
        state = result.state
        if state == "SUCCESS":
            return dict(result.result)
        if state == "FAILURE":
            exc = result.result
            raise ShardError(f"{name}: shard {index} failed: {type(exc).__name__}: {exc}")
    if scan:  # a result lost with a Redis restart: the committed marker is the truth
        marker = read_marker(output, name, index, expected)
        return _summary(index, marker) if marker is not None else None
    return None


class _RedisIdentity:
    """Notices a Redis restart (its run_id changes): queued shards may be gone with it."""

    def __init__(self) -> None:
        try:
            self.run_id = self._current()
        except BROKER_ERRORS:
            self.run_id = None

    def _current(self) -> str | None:
        client = getattr(app.backend, "client", None)
        if client is None:
            return None
        return str(client.info("server").get("run_id"))

    def restarted(self) -> bool:
        current = self._current()
        changed = self.run_id is not None and current is not None and current != self.run_id
        self.run_id = current or self.run_id
        return changed


def _write_rows(uri: str, rows: Sequence[dict[str, Any]]) -> None:
    with storage.atomic_write(uri) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
