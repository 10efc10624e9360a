"""Test-only shard functions (slow, so a worker can be killed mid-shard) and a driver process.

    python -m tests.tasks.slow_shards '{"rows": [...], "params": {...}, "output": "...", ...}'

runs `run_sharded` exactly as a step does (on the workers when RELMODEL_BROKER_URL is set) and
prints the totals as JSON; a failed run prints `error: ...` and exits 1, as a step does.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from typing import Any


def slow_echo(rows: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """Echo rows after `delay` seconds each; rows with "bad" are rejected, a row with "explode" raises.
    Leaves `started-<first id>-<pid>-<n>` in `trace_dir` when it starts (kill tests wait for it)."""
    trace = params.get("trace_dir")
    if trace and rows:
        with open(os.path.join(trace, f"started-{rows[0]['id']}-{os.getpid()}-{uuid.uuid4().hex[:6]}"), "w"):
            pass
    out, rejected = [], []
    for row in rows:
        if row.get("explode"):
            raise ValueError(f"row {row['id']}: cannot process {row['explode']!r}")
        time.sleep(float(params.get("delay", 0.0)))
        if row.get("bad"):
            rejected.append({**row, "reason": f"bad_row: row {row['id']} is marked bad"})
        else:
            out.append({**row, "pid": os.getpid()})
    return {"rows": out, "rejected": rejected, "counts": {"seen": len(rows)}}


def main(argv: list[str]) -> int:
    from relmodel.errors import RelmodelError
    from relmodel.tasks.shards import run_sharded

    spec = json.loads(argv[0])
    started = time.monotonic()
    try:
        totals = run_sharded(spec.get("fn", "tests.tasks.slow_shards:slow_echo"), spec["rows"], spec["params"],
                             spec["output"], spec.get("name", "echo"), int(spec["shard_size"]))
    except RelmodelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"totals": totals, "seconds": round(time.monotonic() - started, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
