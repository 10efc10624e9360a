"""The one protocol every pipeline step's entry point follows (trainer images run exactly this).

    python -m relmodel.trainers.sft --config params.json

`params` is the dict the planner built for the step (`StepPlan.params`); it always has `output`,
the step's output directory URI. The step writes its files there (atomically) and, last of all,
`result.json` with its metrics: the marker executors read as "this step succeeded". A step
that fails writes no result and exits non-zero with its error on stderr: exit code 2
(`EXIT_PERMANENT`) when the input itself is wrong (a RelmodelError: bad data, a tokenizer that
cannot score, nothing to train on), so executors do not retry what cannot succeed; exit code 1
for anything else (a crash, OOM, a lost node), which is worth retrying.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from relmodel import storage
from relmodel.errors import RelmodelError
from relmodel.planner import RESULT_FILE

StepFn = Callable[[dict[str, Any]], dict[str, Any]]
EXIT_PERMANENT = 2
log = logging.getLogger("relmodel.steps")


def result_uri(output: str) -> str:
    return storage.join(output, RESULT_FILE)


def read_result(output: str) -> dict[str, Any] | None:
    """The step's result if it finished, else None."""
    uri = result_uri(output)
    if not storage.exists(uri):
        return None
    return dict(json.loads(storage.read_text(uri)))


def run_step(run: StepFn, params: dict[str, Any]) -> dict[str, Any]:
    """Run a step in-process and record its result; a finished step is not run again."""
    done = read_result(params["output"])
    if done is not None:
        return done
    started = time.time()
    metrics = run(params)
    result = {**metrics, "seconds": round(time.time() - started, 3)}
    storage.write_text(result_uri(params["output"]), json.dumps(result, indent=2, sort_keys=True))
    return result


def load_params(argv: Sequence[str] | None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Run one relmodel pipeline step.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="path or URI of the step's params JSON")
    source.add_argument("--config-json", help="the step's params as a JSON string")
    args = parser.parse_args(argv)
    text = args.config_json if args.config_json is not None else storage.read_text(args.config)
    params = json.loads(text)
    if not isinstance(params, dict) or "output" not in params:
        raise RelmodelError("step params must be a JSON object with an 'output' URI")
    return params


def step_main(run: StepFn, argv: Sequence[str] | None = None) -> int:
    """Entry point body shared by all steps: exit 0 with result.json written, or 1 with the error."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        params = load_params(argv)
        result = run_step(run, params)
    except RelmodelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PERMANENT
    print(json.dumps(result, sort_keys=True))
    return 0
