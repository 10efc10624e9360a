"""The RelevanceModel operator (kopf): CRD generation, child renderers, observation, reconciliation.

Importing this package loads neither kopf nor the kubernetes client (stepwrap runs in trainer images).
"""

from __future__ import annotations


def run_operator(namespace: str | None = None, **kwargs: object) -> None:
    """Run the operator (blocking); see relmodel.operator.main.run_operator for the options."""
    from relmodel.operator.main import run_operator as run

    run(namespace, **kwargs)  # type: ignore[arg-type]


__all__ = ["run_operator"]
