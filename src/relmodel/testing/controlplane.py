"""A real Kubernetes control plane for e2e tests, run as local processes (no Docker, no kubelet).

Why: the operator must be tested against a real apiserver (validation, RBAC, watches, CRDs, the Job and
Deployment controllers), but CI machines have no container engine. The binaries are built from Go modules
by ``hack/build-control-plane.sh`` into a cache outside the repo (envtest style) and started here:

* apiserver only: etcd + kube-apiserver (static token auth, self-signed serving cert);
* full (``full=True``): plus kube-controller-manager, kube-scheduler and kwok with one fake node. kwok
  plays the kubelet: pods become Running and Ready at once; pods owned by a Job become Succeeded after
  ``job_pod_delay`` seconds (per pod: annotation ``pod-complete.stage.kwok.x-k8s.io/delay: "30s"``), or
  Failed with exit code 1 when they carry the annotation ``relmodel.testing/pod-fail`` (use
  ``restartPolicy: Never``). No container ever runs.

Every process gets its own process group and is stopped with SIGTERM, then SIGKILL. When started from the
main thread, the children are also SIGKILLed if the Python process dies (PR_SET_PDEATHSIG), so a killed
test run leaks no processes.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import yaml

APISERVER_COMPONENTS: tuple[str, ...] = ("etcd", "kube-apiserver", "kubectl")
CLUSTER_COMPONENTS: tuple[str, ...] = (
    *APISERVER_COMPONENTS,
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
)

#: A directory of ready binaries; when set it must hold every requested component (nothing is built).
ENV_BIN_DIR = "RELMODEL_CONTROLPLANE_BIN"
#: Override the path of hack/build-control-plane.sh (e.g. when relmodel is installed outside the repo).
ENV_BUILD_SCRIPT = "RELMODEL_CONTROLPLANE_BUILD_SCRIPT"

#: Pod annotation read by the kwok pod-complete stage: a Go duration ("30s") before the pod succeeds.
POD_COMPLETE_DELAY_ANNOTATION = "pod-complete.stage.kwok.x-k8s.io/delay"
#: Pod annotation (any value) that makes a Job's pod fail with exit code 1 instead of succeeding.
POD_FAIL_ANNOTATION = "relmodel.testing/pod-fail"
#: Annotation that tells kwok to manage a node.
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"

_LOOPBACK = "127.0.0.1"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or queried."""


class BinariesUnavailableError(ControlPlaneError):
    """The binaries are neither present nor buildable."""


class GoNotFoundError(BinariesUnavailableError):
    """No binaries are at hand and there is no ``go`` tool to build them (tests may skip on this)."""


# --------------------------------------------------------------------------------------------- binaries


def find_go() -> str | None:
    """Return the ``go`` tool: ``$GO``, ``go`` on PATH, or the usual /usr/local/go install."""
    for candidate in (os.environ.get("GO"), shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_build_script() -> Path | None:
    """Locate hack/build-control-plane.sh: ``$RELMODEL_CONTROLPLANE_BUILD_SCRIPT`` or the source checkout."""
    override = os.environ.get(ENV_BUILD_SCRIPT)
    if override:
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        script = parent / "hack" / "build-control-plane.sh"
        if script.is_file():
            return script
    return None


def _missing(bin_dir: Path, components: Iterable[str]) -> list[str]:
    return [c for c in components if not os.access(bin_dir / c, os.X_OK)]


def ensure_binaries(
    components: Sequence[str] = CLUSTER_COMPONENTS,
    *,
    progress: IO[str] | None = None,
) -> Path:
    """Return a directory holding ``components``, building them if needed.

    Order: ``$RELMODEL_CONTROLPLANE_BIN`` (must be complete), ``$KUBEBUILDER_ASSETS`` when complete,
    else the build script (idempotent, a no-op in well under a second when up to date). Build progress
    goes to ``progress`` (default: stderr). Raises GoNotFoundError when a build is needed and there is
    no Go, BinariesUnavailableError for every other failure.
    """
    explicit = os.environ.get(ENV_BIN_DIR)
    if explicit:
        missing = _missing(Path(explicit), components)
        if missing:
            raise BinariesUnavailableError(f"${ENV_BIN_DIR}={explicit} lacks {', '.join(missing)}")
        return Path(explicit)
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and not _missing(Path(assets), components):
        return Path(assets)

    script = find_build_script()
    if script is None:
        raise BinariesUnavailableError(
            "cannot find hack/build-control-plane.sh (not a source checkout?); "
            f"set ${ENV_BUILD_SCRIPT} or ${ENV_BIN_DIR}"
        )
    go = find_go()
    if go is None:
        raise GoNotFoundError(
            "the Kubernetes control-plane binaries must be built with Go >= 1.26, and no `go` was found "
            f"(looked at $GO, PATH, /usr/local/go/bin/go); or point ${ENV_BIN_DIR} at ready binaries"
        )
    out = progress if progress is not None else sys.stderr
    env = {**os.environ, "GO": go}
    tail: collections.deque[str] = collections.deque(maxlen=40)
    started = time.monotonic()
    with subprocess.Popen(
        ["bash", str(script), *components],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:  # the build logs to stderr; stream it, keep the tail for the error
            out.write(line)
            out.flush()
            tail.append(line)
        stdout = proc.stdout.read()
    if proc.returncode != 0:
        raise BinariesUnavailableError(
            f"{script} {' '.join(components)} failed (exit {proc.returncode}) after "
            f"{time.monotonic() - started:.0f}s; last output:\n{''.join(tail)}"
        )
    lines = stdout.strip().splitlines()
    bin_dir = Path(lines[-1]) if lines else None
    if bin_dir is None or _missing(bin_dir, components):
        raise BinariesUnavailableError(f"{script} succeeded but did not yield {components} (stdout: {stdout!r})")
    return bin_dir


# -------------------------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_LOOPBACK, 0))
        return int(s.getsockname()[1])


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn that SIGKILLs the child when its parent thread dies, so a killed pytest leaks nothing.

    SIGKILL, not SIGTERM: a terminating kube-apiserver whose etcd is already gone hangs for a long time.
    Only used from the main thread: the signal fires when the *thread* that forked exits.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)

    return preexec


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return ""


class _Process:
    """One control-plane process in its own process group, logging to a file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._log = log_path.open("ab")
        try:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() signals the whole group
                preexec_fn=_parent_death_signal(),
            )
        except OSError as exc:
            self._log.close()
            raise ControlPlaneError(f"cannot run {self.argv[0]}: {exc}") from exc

    @property
    def pid(self) -> int:
        return self._popen.pid

    def exited(self) -> int | None:
        return self._popen.poll()

    def describe_exit(self) -> str:
        return f"{self.name} exited with code {self._popen.returncode}; log {self.log_path}:\n{_tail(self.log_path)}"

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; always reap."""
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._popen.pid, signal.SIGTERM)
            try:
                self._popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._popen.pid, signal.SIGKILL)
                self._popen.wait()
        # The leader is gone; SIGKILL stragglers left in its group (none expected).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signal.SIGKILL)
        self._log.close()


# ---------------------------------------------------------------------------------------------- kwok


# Adapted from kwok v0.8.0 kustomize/stage/{node,pod}/fast (node-initialize, pod-ready, pod-complete,
# pod-delete), with a delay on pod-complete and an extra pod-fail stage.
_KWOK_STAGES = r"""
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-initialize
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $lastTransitionTime := or .metadata.creationTimestamp $now }}
      conditions:
      {{ range NodeConditions }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $lastTransitionTime | Quote }}
        message: {{ .message | Quote }}
        reason: {{ .reason | Quote }}
        status: {{ .status | Quote }}
        type: {{ .type  | Quote}}
      {{ end }}
      addresses:
      {{ with NodeIP }}
      - address: {{ . | Quote }}
        type: InternalIP
      {{ end }}
      {{ with NodeName }}
      - address: {{ . | Quote }}
        type: Hostname
      {{ end }}
      allocatable:
      {{ with .status.allocatable }}
      {{ YAML . 1 }}
      {{ else }}
        cpu: 1k
        memory: 1Ti
        pods: 1M
      {{ end }}
      capacity:
      {{ with .status.capacity }}
      {{ YAML . 1 }}
      {{ else }}
        cpu: 1k
        memory: 1Ti
        pods: 1M
      {{ end }}
      {{ $kwokVersion := printf "kwok-%s" Version }}
      nodeInfo:
        architecture: amd64
        bootID: ""
        containerRuntimeVersion: {{ $kwokVersion }}
        kernelVersion: {{ $kwokVersion }}
        kubeProxyVersion: {{ $kwokVersion }}
        kubeletVersion: {{ $kwokVersion }}
        machineID: ""
        operatingSystem: linux
        osImage: ""
        systemUUID: ""
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: DoesNotExist
    - key: '.status.phase'
      operator: In
      values: ['Pending']
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: ContainersReady
      {{ range .spec.readinessGates }}
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: {{ .conditionType | Quote }}
      {{ end }}
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        started: true
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      initContainerStatuses:
      {{ range .spec.initContainers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        {{ if eq .restartPolicy "Always" }}
        started: true
        state:
          running:
            startedAt: {{ $now | Quote }}
        {{ else }}
        state:
          terminated:
            exitCode: 0
            finishedAt: {{ $now | Quote }}
            reason: Completed
            startedAt: {{ $now | Quote }}
        {{ end }}
      {{ end }}
      {{ $hostIPs := NodeIPsWith .spec.nodeName }}
      {{ with $hostIPs }}
      hostIP: {{ index . 0 | Quote }}
      hostIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      {{ $hostNetwork := or .spec.hostNetwork false }}
      {{ $uid := or .metadata.uid "" }}
      {{ $name := or .metadata.name "" }}
      {{ $namespace := or .metadata.namespace "" }}
      {{ $podIPs := PodIPsWith .spec.nodeName $hostNetwork $uid $name $namespace }}
      {{ with $podIPs }}
      podIP: {{ index . 0 | Quote }}
      podIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      phase: Running
      startTime: {{ $now | Quote }}
---
@JOB_POD_ENDS@apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: Exists
  next:
    delete: true
"""


# How a Job's pod ends: Succeeded, or Failed when it carries the fail annotation (one template, two Stages).
_JOB_POD_END = r"""
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: @NAME@
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: DoesNotExist
    - key: '.status.phase'
      operator: In
      values: ['Running']
    - key: '.metadata.ownerReferences.[].kind'
      operator: In
      values: ['Job']
    - key: '.metadata.annotations["@FAIL_ANNOTATION@"]'
      operator: @FAIL_OP@
  delay:
    durationMilliseconds: @JOB_POD_DELAY_MS@
    durationFrom:
      expressionFrom: '.metadata.annotations["@DELAY_ANNOTATION@"]'
  next:
    statusTemplate: |
      {{ $now := Now }}
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: @EXIT_CODE@
            finishedAt: {{ $now | Quote }}
            reason: @REASON@
            startedAt: {{ $now | Quote }}
      {{ end }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        type: Ready
        reason: @POD_REASON@
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        type: ContainersReady
        reason: @POD_REASON@
      phase: @PHASE@
---
"""
_JOB_POD_ENDINGS = (
    {"@NAME@": "pod-complete", "@FAIL_OP@": "DoesNotExist", "@EXIT_CODE@": "0", "@REASON@": "Completed",
     "@POD_REASON@": "PodCompleted", "@PHASE@": "Succeeded"},
    {"@NAME@": "pod-fail", "@FAIL_OP@": "Exists", "@EXIT_CODE@": "1", "@REASON@": "Error",
     "@POD_REASON@": "PodFailed", "@PHASE@": "Failed"},
)


def _fill(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(key, value)
    return template


def kwok_stages(job_pod_delay: float) -> str:
    """The kwok Stage documents (YAML) used by the full cluster; see the module docstring."""
    endings = "".join(_fill(_JOB_POD_END.lstrip("\n"), values) for values in _JOB_POD_ENDINGS)
    return (
        _KWOK_STAGES.replace("@JOB_POD_ENDS@", endings)
        .replace("@JOB_POD_DELAY_MS@", str(round(job_pod_delay * 1000)))
        .replace("@DELAY_ANNOTATION@", POD_COMPLETE_DELAY_ANNOTATION)
        .replace("@FAIL_ANNOTATION@", POD_FAIL_ANNOTATION)
        .lstrip()
    )


# -------------------------------------------------------------------------------------- control plane


class ControlPlane:
    """etcd + kube-apiserver (and with ``full=True`` kcm, scheduler, kwok) on free loopback ports.

    Use as a context manager or call start()/stop(). After start(): ``kubeconfig`` (admin, token auth,
    verified TLS), ``server``, ``token``, ``ca_file``, ``kubectl_path`` (same minor as the apiserver when
    built), ``env()`` and ``kubectl()``. ``workdir`` (default: a fresh temp dir, removed on stop) holds
    the kubeconfig, certificates and ``logs/<component>.log``; with an explicit ``workdir`` only the
    etcd data is removed on stop, so the logs stay for debugging.
    """

    def __init__(
        self,
        *,
        full: bool = False,
        bin_dir: Path | str | None = None,
        workdir: Path | str | None = None,
        start_timeout: float = 90.0,
        job_pod_delay: float = 1.0,
        node_name: str = "kwok-node-0",
    ) -> None:
        self.full = full
        self.components = CLUSTER_COMPONENTS if full else APISERVER_COMPONENTS
        self._bin_dir = Path(bin_dir) if bin_dir is not None else None
        self._own_workdir = workdir is None
        self._workdir = Path(workdir) if workdir is not None else None
        self.start_timeout = start_timeout
        self.job_pod_delay = job_pod_delay
        self.node_name = node_name
        self.token = secrets.token_hex(24)
        self._procs: list[_Process] = []
        self._port = 0
        self._started = False
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ public accessors

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            raise ControlPlaneError("binaries not resolved yet; call start()")
        return self._bin_dir

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise ControlPlaneError("control plane not started")
        return self._workdir

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        """The apiserver's self-signed serving cert bundle (leaf + its CA), usable as a CA file."""
        return self.workdir / "pki" / "apiserver.crt"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def server(self) -> str:
        return f"https://{_LOOPBACK}:{self._port}"

    @property
    def kubectl_path(self) -> str:
        """kubectl of the apiserver's minor when it was built, else the one on PATH (skew warnings)."""
        if self._bin_dir is not None and os.access(self._bin_dir / "kubectl", os.X_OK):
            return str(self._bin_dir / "kubectl")
        found = shutil.which("kubectl")
        if found is None:
            raise ControlPlaneError("no kubectl: neither built nor on PATH")
        return found

    def env(self) -> dict[str, str]:
        """os.environ with KUBECONFIG set and the binaries' directory first on PATH."""
        path = f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": path}

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane; raise ControlPlaneError with stderr on failure."""
        argv = [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, env=self.env(), check=False
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}{result.stdout}"
            )
        return result

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """A request to the apiserver as admin (no client library needed).

        Returns the decoded JSON body, or the text for non-JSON answers (/readyz says ``ok``).
        """
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),  # loopback must never go through an HTTP(S)_PROXY
            urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=str(self.ca_file))),
        )
        with opener.open(req, timeout=timeout) as resp:
            raw = resp.read()
            is_json = resp.headers.get_content_type() == "application/json"
        if not raw:
            return None
        return json.loads(raw) if is_json else raw.decode()

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"server={self.server}" if self._started else "stopped"
        return f"ControlPlane(full={self.full}, {state})"

    def start(self) -> Self:
        """Resolve the binaries, then start and wait for every component; stop all of it on failure."""
        if self._started:
            return self
        t0 = time.monotonic()
        if self._bin_dir is None:
            self._bin_dir = ensure_binaries(self.components)
        missing = _missing(self._bin_dir, self.components)
        if missing:
            raise BinariesUnavailableError(f"{self._bin_dir} lacks {', '.join(missing)}")
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="relmodel-cp-"))
        for sub in ("pki", "logs"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self._started = True
        atexit.register(self.stop)
        try:
            t1 = time.monotonic()
            self._write_secrets()
            etcd_url = self._start_etcd()
            self._start_apiserver(etcd_url)
            self._write_kubeconfig()
            self.timings["apiserver_ready_s"] = time.monotonic() - t1
            if self.full:
                t2 = time.monotonic()
                self._start_cluster_components()
                self.timings["cluster_ready_s"] = time.monotonic() - t2
        except BaseException:
            self.stop()
            raise
        self.timings["start_s"] = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop every process (reverse start order), then drop the etcd data (and an owned workdir)."""
        if not self._started:
            return
        self._started = False
        atexit.unregister(self.stop)
        while self._procs:
            self._procs.pop().stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir / "etcd", ignore_errors=True)
            if self._own_workdir:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None

    # ------------------------------------------------------------------ internals

    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _spawn(self, name: str, argv: Sequence[str]) -> _Process:
        proc = _Process(name, argv, self.log_dir / f"{name}.log")
        self._procs.append(proc)
        return proc

    def _wait(self, what: str, ready: Callable[[], bool], procs: Sequence[_Process], timeout: float) -> None:
        """Poll ``ready`` until true; fail fast when a watched process exits."""
        deadline = time.monotonic() + timeout
        while True:
            for proc in procs:
                if proc.exited() is not None:
                    raise ControlPlaneError(f"while waiting for {what}: {proc.describe_exit()}")
            try:
                if ready():
                    return
            except (OSError, ValueError, ssl.SSLError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.log_path}:\n{_tail(p.log_path, 15)}" for p in procs)
                raise ControlPlaneError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
            time.sleep(0.2)

    def _start_on_free_ports(
        self,
        name: str,
        nports: int,
        argv_for: Callable[[list[int]], Sequence[str]],
        ready_for: Callable[[list[int]], Callable[[], bool]],
        timeout: float,
    ) -> list[int]:
        """Start a process on fresh free ports; retry when another process grabbed a port first."""
        for attempt in range(3):
            ports = [_free_port() for _ in range(nports)]
            proc = self._spawn(name, argv_for(ports))
            try:
                self._wait(name, ready_for(ports), [proc], timeout)
                return ports
            except ControlPlaneError:
                in_use = "address already in use" in _tail(proc.log_path, 60)
                proc.stop()
                self._procs.remove(proc)
                if not in_use or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _write_secrets(self) -> None:
        # Static token auth: the simplest credential every client (kubectl, kopf, client-go) accepts.
        (self.workdir / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        (self.workdir / "tokens.csv").chmod(0o600)
        _write_rsa_key(self.workdir / "pki" / "sa.key")

    def _start_etcd(self) -> str:
        data = self.workdir / "etcd"

        def argv(ports: list[int]) -> list[str]:
            client, peer = (f"http://{_LOOPBACK}:{p}" for p in ports)
            shutil.rmtree(data, ignore_errors=True)
            return [
                self._bin("etcd"),
                "--name=relmodel",
                f"--data-dir={data}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=relmodel={peer}",
                "--unsafe-no-fsync=true",  # test data: speed over durability
                "--watch-progress-notify-interval=5s",  # what the apiserver's watch cache expects
                "--log-level=warn",
            ]

        def ready(ports: list[int]) -> Callable[[], bool]:
            def check() -> bool:
                with _open(f"http://{_LOOPBACK}:{ports[0]}/health") as resp:
                    return bool(json.loads(resp.read()).get("health") == "true")

            return check

        ports = self._start_on_free_ports("etcd", 2, argv, ready, self.start_timeout)
        return f"http://{_LOOPBACK}:{ports[0]}"

    def _start_apiserver(self, etcd_url: str) -> None:
        pki = self.workdir / "pki"
        # Without a service-account controller (apiserver only), pods would be rejected for lack of a
        # `default` ServiceAccount; without the node-lifecycle controller, nodes would keep their
        # not-ready taint. envtest disables the same admission plugins.
        disabled = ["TaintNodesByCondition"] if self.full else ["TaintNodesByCondition", "ServiceAccount"]

        def argv(ports: list[int]) -> list[str]:
            self._port = ports[0]
            for stale in ("apiserver.crt", "apiserver.key"):
                (pki / stale).unlink(missing_ok=True)
            return [
                self._bin("kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={_LOOPBACK}",
                f"--advertise-address={_LOOPBACK}",
                f"--secure-port={self._port}",
                f"--cert-dir={pki}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer=https://{_LOOPBACK}:{self._port}",
                f"--service-account-key-file={pki / 'sa.key'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                f"--disable-admission-plugins={','.join(disabled)}",
                "--profiling=false",
            ]

        def ready(ports: list[int]) -> Callable[[], bool]:
            def check() -> bool:
                if not self.ca_file.exists():
                    return False
                with contextlib.suppress(urllib.error.HTTPError):  # 500 while post-start hooks run
                    return bool(self.request("GET", "/readyz", timeout=3) == "ok")
                return False

            return check

        self._start_on_free_ports("kube-apiserver", 1, argv, ready, self.start_timeout)

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "relmodel-test",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "relmodel-test", "context": {"cluster": "relmodel-test", "user": "admin"}}],
            "current-context": "relmodel-test",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def _start_cluster_components(self) -> None:
        kubeconfig = str(self.kubeconfig)
        pki = self.workdir / "pki"
        always_allow = "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics"

        def healthz(ports: list[int]) -> Callable[[], bool]:
            def check() -> bool:
                with _open(f"https://{_LOOPBACK}:{ports[0]}/healthz", insecure=True) as resp:
                    return bool(resp.status == 200)

            return check

        self._start_on_free_ports(
            "kube-controller-manager",
            1,
            lambda ports: [
                self._bin("kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                f"--bind-address={_LOOPBACK}",
                f"--secure-port={ports[0]}",
                f"--cert-dir={pki / 'kcm'}",
                always_allow,
                "--leader-elect=false",
                # Everything but node-lifecycle: kwok sends no node heartbeats, so that controller
                # would mark the fake node NotReady and evict its pods.
                "--controllers=*,-node-lifecycle-controller",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={self.ca_file}",  # published as the kube-root-ca.crt ConfigMaps
            ],
            healthz,
            self.start_timeout,
        )

        sched_config = self.workdir / "kube-scheduler.yaml"
        sched_config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1",
                    "kind": "KubeSchedulerConfiguration",
                    "clientConnection": {"kubeconfig": kubeconfig},
                    "leaderElection": {"leaderElect": False},
                }
            )
        )
        self._start_on_free_ports(
            "kube-scheduler",
            1,
            lambda ports: [
                self._bin("kube-scheduler"),
                f"--config={sched_config}",
                f"--bind-address={_LOOPBACK}",
                f"--secure-port={ports[0]}",
                f"--cert-dir={pki / 'scheduler'}",
                always_allow,
            ],
            healthz,
            self.start_timeout,
        )

        kwok_config = self.workdir / "kwok.yaml"
        kwok_config.write_text(kwok_stages(self.job_pod_delay))
        self._spawn(
            "kwok",
            [
                self._bin("kwok"),
                f"--kubeconfig={kubeconfig}",
                f"--config={kwok_config}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                "--cidr=10.244.0.0/16",  # pod IPs
                "--node-ip=192.0.2.10",  # the node's InternalIP (TEST-NET-1: clearly fake)
            ],
        )
        self._create_node()

        def node_ready() -> bool:
            node = self.request("GET", f"/api/v1/nodes/{self.node_name}")
            conditions = node.get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        self._wait(f"node {self.node_name} Ready (kwok)", node_ready, self._procs, self.start_timeout)

        def default_service_account() -> bool:
            return bool(self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default"))

        # Pods are admitted only once their namespace's `default` ServiceAccount exists.
        self._wait("ServiceAccount default/default", default_service_account, self._procs, self.start_timeout)

    def _create_node(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "type": "kwok",
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            },
        }
        self.request("POST", "/api/v1/nodes", node)


def _open(url: str, *, insecure: bool = False, timeout: float = 3.0) -> Any:
    """urlopen without proxies; ``insecure`` for the components' throwaway self-signed health endpoints."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    return urllib.request.build_opener(*handlers).open(url, timeout=timeout)


def _write_rsa_key(path: Path) -> None:
    """Write the service-account signing key: `cryptography` when installed, else the openssl CLI."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise ControlPlaneError("need the `cryptography` package or the openssl CLI to make an RSA key") from None
        subprocess.run([openssl, "genrsa", "-out", str(path), "2048"], check=True, capture_output=True)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    path.chmod(0o600)
