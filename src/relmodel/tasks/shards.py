"""Sharded data runs: split rows into shards, process each shard in one idempotent task that
writes its output file atomically, then merge the shard files in order.

A shard whose output already exists is not processed again, so re-running a run (or a shard
redelivered after a worker died) never duplicates rows.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from relmodel import storage
from relmodel.tasks.app import app

# A shard processor: (rows, params) -> {"rows": output rows, "rejected": rows, "counts": {...}}.
ShardFn = Callable[[list[dict[str, Any]], dict[str, Any]], dict[str, Any]]


def shard_uri(output: str, name: str, index: int, suffix: str = "") -> str:
    return storage.join(output, "shards", f"{name}{suffix}-{index:05d}.jsonl")


@app.task(name="relmodel.process_shard", acks_late=True, reject_on_worker_lost=True)
def process_shard(fn_path: str, rows: list[dict[str, Any]], params: dict[str, Any],
                  output: str, name: str, index: int) -> dict[str, Any]:
    """Run `fn_path` ("module:function") on one shard and write its outputs atomically."""
    out_uri = shard_uri(output, name, index)
    counts_uri = shard_uri(output, name, index, ".counts").replace(".jsonl", ".json")
    if storage.exists(counts_uri):
        return dict(json.loads(storage.read_text(counts_uri)))
    module, func = fn_path.split(":")
    fn: ShardFn = getattr(importlib.import_module(module), func)
    result = fn(rows, params)
    _write_rows(out_uri, result.get("rows", []))
    _write_rows(shard_uri(output, name, index, ".rejected"), result.get("rejected", []))
    counts = {"rows": len(result.get("rows", [])), "rejected": len(result.get("rejected", [])),
              **result.get("counts", {})}
    storage.write_text(counts_uri, json.dumps(counts))  # written last: the shard's done-marker
    return counts


def run_sharded(fn_path: str, rows: Sequence[dict[str, Any]], params: dict[str, Any], output: str,
                name: str, shard_size: int) -> dict[str, Any]:
    """Process `rows` in shards (eagerly here; `relmodel.tasks` workers run the same task on a broker),
    merge outputs into `<output>/<name>.jsonl` and `<output>/<name>.rejected.jsonl`, sum counts."""
    shards = [list(rows[i : i + shard_size]) for i in range(0, len(rows), shard_size)] or [[]]
    totals: dict[str, Any] = {}
    for index, shard in enumerate(shards):
        counts = process_shard.apply(args=(fn_path, shard, params, output, name, index)).get()
        for key, value in counts.items():
            if isinstance(value, int | float):
                totals[key] = totals.get(key, 0) + value
    merge_shards(output, name, len(shards))
    return totals


def merge_shards(output: str, name: str, count: int) -> None:
    for suffix, target in (("", f"{name}.jsonl"), (".rejected", f"{name}.rejected.jsonl")):
        with storage.atomic_write(storage.join(output, target)) as handle:
            for index in range(count):
                uri = shard_uri(output, name, index, suffix)
                if storage.exists(uri):
                    handle.write(storage.read_text(uri))


def _write_rows(uri: str, rows: Sequence[dict[str, Any]]) -> None:
    with storage.atomic_write(uri) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
