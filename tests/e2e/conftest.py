"""Fixtures for e2e tests against a real, local Kubernetes control plane (relmodel.testing.ControlPlane).

* ``control_plane`` (session): etcd + kube-apiserver only. CRDs, validation, RBAC, watches; no controllers,
  so no pods run, no garbage collection, no namespace finalization.
* ``cluster`` (session): the same plus kube-controller-manager, kube-scheduler and kwok with one fake node,
  so Jobs complete and Deployments become Available (no container ever runs).
* ``control_plane_kubeconfig`` / ``cluster_kubeconfig`` (function): export KUBECONFIG (and put the
  kubectl of the apiserver's minor first on PATH) for the test; return the kubeconfig path.
* ``crd`` (module) installs the RelevanceModel CRD on ``cluster``; ``ns`` (function) a fresh namespace.

The binaries are built once, before the first test and outside per-test timeouts (``pytest_runtestloop``),
only for the components that the selected tests need. Rule: no ``go`` -> the tests skip; ``go`` present but
the build or the start fails -> the tests fail (never a silent skip in CI).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.e2e.operator_harness import ROOT, kubectl

from relmodel.operator.crd import CRD_PATH
from relmodel.testing import (
    APISERVER_COMPONENTS,
    CLUSTER_COMPONENTS,
    ControlPlane,
    ControlPlaneError,
    ensure_binaries,
)
from relmodel.testing.controlplane import GoNotFoundError

_BINARIES = pytest.StashKey[Path | ControlPlaneError]()


def _needed_components(items: list[pytest.Item]) -> tuple[str, ...]:
    names: set[str] = set()
    for item in items:
        names.update(getattr(item, "fixturenames", ()))
    if {"cluster", "cluster_kubeconfig"} & names:
        return CLUSTER_COMPONENTS
    if {"control_plane", "control_plane_kubeconfig"} & names:
        return APISERVER_COMPONENTS
    return ()


def _resolve_binaries(config: pytest.Config, components: tuple[str, ...]) -> Path | ControlPlaneError:
    """Build (or find) the binaries with output capture off, so a long first build shows progress."""
    capman = config.pluginmanager.getplugin("capturemanager")
    quiet = capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
    with quiet:
        try:
            return ensure_binaries(components)
        except ControlPlaneError as exc:
            return exc


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Build before any test runs, so the (possibly long, cold) build is not charged to a test's timeout."""
    if session.config.option.collectonly:
        return
    components = _needed_components(session.items)
    if components:
        session.config.stash[_BINARIES] = _resolve_binaries(session.config, components)


def _bin_dir(config: pytest.Config, components: tuple[str, ...]) -> Path:
    result = config.stash.get(_BINARIES, None)
    if result is None or (isinstance(result, Path) and any(not (result / c).exists() for c in components)):
        result = _resolve_binaries(config, components)  # fixture requested dynamically
        config.stash[_BINARIES] = result
    if isinstance(result, GoNotFoundError):
        pytest.skip(f"e2e control plane unavailable: {result}")
    if isinstance(result, ControlPlaneError):
        pytest.fail(f"e2e control plane binaries could not be obtained: {result}", pytrace=False)
    return result


def _start(config: pytest.Config, tmp: Path, *, full: bool) -> ControlPlane:
    components = CLUSTER_COMPONENTS if full else APISERVER_COMPONENTS
    plane = ControlPlane(full=full, bin_dir=_bin_dir(config, components), workdir=tmp)
    try:
        return plane.start()
    except ControlPlaneError as exc:
        pytest.fail(f"e2e control plane (full={full}) failed to start: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def control_plane(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver, shared by the session; logs under its workdir (pytest's basetemp)."""
    plane = _start(pytestconfig, tmp_path_factory.mktemp("control-plane"), full=False)
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def cluster(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A full control plane with kwok's fake node: pods get scheduled, Jobs complete, Deployments go Available."""
    plane = _start(pytestconfig, tmp_path_factory.mktemp("cluster"), full=True)
    yield plane
    plane.stop()


def _export(plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> Path:
    env = plane.env()
    monkeypatch.setenv("KUBECONFIG", env["KUBECONFIG"])
    monkeypatch.setenv("PATH", env["PATH"])
    return plane.kubeconfig


@pytest.fixture
def control_plane_kubeconfig(control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> Path:
    """KUBECONFIG (and PATH for kubectl) pointing at ``control_plane`` during the test."""
    return _export(control_plane, monkeypatch)


@pytest.fixture
def cluster_kubeconfig(cluster: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> Path:
    """KUBECONFIG (and PATH for kubectl) pointing at ``cluster`` during the test."""
    return _export(cluster, monkeypatch)


@pytest.fixture(scope="module")
def crd(cluster: ControlPlane) -> None:
    cluster.kubectl("apply", "-f", str(ROOT / CRD_PATH))
    cluster.kubectl("wait", "--for=condition=Established", "crd/relevancemodels.relmodel.dev", "--timeout=30s")


@pytest.fixture
def ns(cluster_kubeconfig: Path, crd: None) -> Iterator[str]:
    name = f"relm-{secrets.token_hex(3)}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)
