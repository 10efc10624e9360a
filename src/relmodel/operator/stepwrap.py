"""The command every step container runs: the step's entry point, then its result to the termination log.

    python -m relmodel.operator.stepwrap relmodel.trainers.sft --config /config/params.json

runs `python -m relmodel.trainers.sft --config /config/params.json` unchanged (the steps.py protocol)
and, when it exits 0, copies its result.json (compact, at most 4 KiB: scalar metrics first) to
/dev/termination-log, so the operator reads metrics from the pod status without reading storage.
Imports nothing from kopf or kubernetes: it runs in the trainer image.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

TERMINATION_LOG = os.environ.get("RELMODEL_TERMINATION_LOG", "/dev/termination-log")
MAX_MESSAGE = 4096  # the kubelet keeps at most 4096 bytes of a termination message


def termination_message(result: dict[str, Any], limit: int = MAX_MESSAGE) -> str:
    """`result` as compact JSON within `limit` bytes: whole if it fits, else its scalar metrics."""
    text = json.dumps(result, sort_keys=True, separators=(",", ":"))
    if len(text.encode()) <= limit:
        return text
    scalars = {k: v for k, v in sorted(result.items()) if isinstance(v, int | float | str | bool) or v is None}
    scalars["truncated"] = True
    while len(json.dumps(scalars, separators=(",", ":")).encode()) > limit and len(scalars) > 1:
        scalars.pop(next(k for k in scalars if k != "truncated"))
    return json.dumps(scalars, sort_keys=True, separators=(",", ":"))


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "--config":
        print("usage: python -m relmodel.operator.stepwrap <entry module> --config <params.json>", file=sys.stderr)
        return 2
    entry, config = args[0], args[2]
    code = subprocess.call([sys.executable, "-m", entry, *args[1:]])
    if code != 0:
        return code
    from relmodel import storage
    from relmodel.steps import read_result

    params = json.loads(storage.read_text(config))
    result = read_result(params["output"])
    if result is None:
        print(f"error: {entry} exited 0 but wrote no result.json under {params['output']}", file=sys.stderr)
        return 1
    try:
        with open(TERMINATION_LOG, "w", encoding="utf-8") as handle:
            handle.write(termination_message(result))
    except OSError as exc:  # not in a pod: the result is in storage all the same
        print(f"warning: cannot write {TERMINATION_LOG}: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
