"""Fixtures for the chart tests (no cluster needed: helm lint/template and offline schema validation)."""

from __future__ import annotations

import pytest

from tests.helm.helmtool import Helm, require_helm


@pytest.fixture(scope="session")
def helm() -> Helm:
    """helm v3 (built once into ~/.cache/relmodel/helm; skips only when there is no `go`)."""
    return Helm(require_helm())
