"""helm for the tests: built from the Go module proxy by hack/build-helm.sh into ~/.cache/relmodel/helm.

Rule (as for the control-plane binaries): no `go` and no ready helm -> the tests skip; `go` present but
the build fails -> the tests FAIL with the build's output (never a silent skip in CI).
Set RELMODEL_HELM to a ready helm v3 binary to skip the build.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from relmodel.testing.controlplane import find_go

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "relmodel"
BUILD_SCRIPT = ROOT / "hack" / "build-helm.sh"
ENV_HELM = "RELMODEL_HELM"
#: What the e2e tests and docs/kind.md install: release "relmodel" in namespace "relmodel".
RELEASE = "relmodel"
NAMESPACE = "relmodel"


class HelmBuildError(RuntimeError):
    """hack/build-helm.sh failed although `go` is there."""


def build_helm() -> Path | None:
    """The helm binary: $RELMODEL_HELM, else built (idempotently) by hack/build-helm.sh; None without `go`."""
    ready = os.environ.get(ENV_HELM)
    if ready:
        if not os.access(ready, os.X_OK):
            raise HelmBuildError(f"${ENV_HELM}={ready} is not an executable")
        return Path(ready)
    go = find_go()
    if go is None:
        return None
    tail: collections.deque[str] = collections.deque(maxlen=30)
    started = time.monotonic()
    with subprocess.Popen(["bash", str(BUILD_SCRIPT)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env={**os.environ, "GO": go}) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:  # progress of a (possibly long, cold) build, streamed
            sys.stderr.write(line)
            tail.append(line)
        stdout = proc.stdout.read()
    if proc.returncode != 0:
        raise HelmBuildError(f"{BUILD_SCRIPT.relative_to(ROOT)} failed (exit {proc.returncode}) after "
                             f"{time.monotonic() - started:.0f}s; last output:\n{''.join(tail)}")
    path = Path(stdout.strip().splitlines()[-1]) if stdout.strip() else None
    if path is None or not os.access(path, os.X_OK):
        raise HelmBuildError(f"{BUILD_SCRIPT.name} succeeded but printed no helm binary (stdout: {stdout!r})")
    return path


def require_helm() -> Path:
    """build_helm() for a fixture: skip without go, fail on a broken build."""
    try:
        path = build_helm()
    except HelmBuildError as exc:
        pytest.fail(f"helm could not be built: {exc}", pytrace=False)
    if path is None:
        pytest.skip("helm is not installed and there is no `go` to build it (hack/build-helm.sh); "
                    f"or set ${ENV_HELM}")
    return path


class Helm:
    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory() as home:  # no user config, cache or repositories leak in
            env = {**os.environ, "HELM_CONFIG_HOME": home, "HELM_CACHE_HOME": home, "HELM_DATA_HOME": home}
            result = subprocess.run([str(self.binary), *args], capture_output=True, text=True, timeout=120,
                                    env=env, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def _values_args(self, values: Mapping[str, Any] | None, sets: Iterable[str], tmp: str) -> list[str]:
        args: list[str] = []
        if values:
            path = Path(tmp) / "values.yaml"
            path.write_text(yaml.safe_dump(dict(values)))
            args += ["-f", str(path)]
        for item in sets:
            args += ["--set", item]
        return args

    def template_text(self, values: Mapping[str, Any] | None = None, sets: Iterable[str] = (), *,
                      namespace: str = NAMESPACE, release: str = RELEASE, include_crds: bool = False,
                      check: bool = True, extra: Iterable[str] = ()) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory() as tmp:
            args = ["template", release, str(CHART), "--namespace", namespace,
                    *self._values_args(values, sets, tmp), *extra]
            if include_crds:
                args.append("--include-crds")
            return self.run(*args, check=check)

    def template(self, values: Mapping[str, Any] | None = None, sets: Iterable[str] = (), **kw: Any
                 ) -> list[dict[str, Any]]:
        """Rendered manifests, parsed (empty documents dropped)."""
        text = self.template_text(values, sets, **kw).stdout
        return [d for d in yaml.safe_load_all(text) if d]


def by_kind(docs: Iterable[Mapping[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: dict(d) for d in docs if d["kind"] == kind}
