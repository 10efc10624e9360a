"""Test helpers that need no test framework: a real, local Kubernetes control plane for e2e tests."""

from relmodel.testing.controlplane import (
    APISERVER_COMPONENTS,
    CLUSTER_COMPONENTS,
    BinariesUnavailableError,
    ControlPlane,
    ControlPlaneError,
    ensure_binaries,
    find_go,
)

__all__ = [
    "APISERVER_COMPONENTS",
    "CLUSTER_COMPONENTS",
    "BinariesUnavailableError",
    "ControlPlane",
    "ControlPlaneError",
    "ensure_binaries",
    "find_go",
]
