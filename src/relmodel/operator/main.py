"""Run the operator: `relmodel operator` (the CLI calls run_operator) or `python -m relmodel.operator`."""

from __future__ import annotations

import argparse
import dataclasses
import logging

import kopf

from relmodel.operator import handlers
from relmodel.operator.reconcile import OperatorSettings


def run_operator(
    namespace: str | None = None,
    *,
    resync_seconds: float | None = None,
    result_grace_seconds: float | None = None,
    liveness_endpoint: str | None = None,
    data_runs_url: str | None = None,
    verbose: bool = False,
) -> None:
    """Run the operator until SIGINT/SIGTERM; `namespace=None` watches every namespace.

    Unset knobs come from RELMODEL_OPERATOR_* environment variables (see handlers.settings_from_env).
    """
    base = handlers.settings_from_env()
    settings = dataclasses.replace(
        base,
        namespace=namespace,
        resync_seconds=resync_seconds if resync_seconds is not None else base.resync_seconds,
        result_grace_seconds=result_grace_seconds if result_grace_seconds is not None else base.result_grace_seconds,
        data_runs_url=data_runs_url or base.data_runs_url,
    )
    handlers.SETTINGS = settings
    kopf.configure(verbose=verbose)
    logging.getLogger("relmodel").setLevel(logging.DEBUG if verbose else logging.INFO)
    kopf.run(
        standalone=True,  # one operator per namespace scope; no peering CRD needed
        clusterwide=namespace is None,
        namespaces=[namespace] if namespace else (),
        liveness_endpoint=liveness_endpoint,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="relmodel operator", description="Run the RelevanceModel operator.")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", help="watch one namespace (default: all)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default)")
    parser.add_argument("--resync-seconds", type=float, default=None,
                        help=f"level-based resync period (default {OperatorSettings.resync_seconds})")
    parser.add_argument("--result-grace-seconds", type=float, default=None,
                        help="how long a succeeded Job may take to report its result")
    parser.add_argument("--data-runs-url", default=None,
                        help="run the data steps on this data-run service (default: $RELMODEL_DATA_RUNS_URL; "
                             "unset: as Jobs)")
    parser.add_argument("--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    run_operator(args.namespace, resync_seconds=args.resync_seconds, result_grace_seconds=args.result_grace_seconds,
                 liveness_endpoint=args.liveness, data_runs_url=args.data_runs_url, verbose=args.verbose)
    return 0
