"""`DataRunClient`: what the operator (and the local executor, when a service is configured) calls
to run the data steps on the workers. Only httpx + pydantic: no Celery, FastAPI or Redis here."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import httpx
from pydantic import ValidationError

from relmodel.errors import RelmodelError
from relmodel.tasks.service.models import RunCreate, RunKind, RunStatus


class DataRunError(RelmodelError):
    """The data-run service refused a request or could not be reached."""


class DataRunClient:
    """Typed client of `/v1/runs`. `start` is idempotent: the same kind + params is the same run."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    def start(self, kind: RunKind, params: dict[str, Any], *, input: str | None = None,
              output: str | None = None) -> RunStatus:
        """Start (or find) the run of a data step; `params` is the StepPlan's params as built."""
        try:
            body = RunCreate(kind=kind, params=params, input=input, output=output)
        except ValidationError as exc:
            raise DataRunError(f"invalid {kind} run: {exc.errors()[0]['msg']}") from exc
        return RunStatus.model_validate(self._request("POST", "/v1/runs", json=body.model_dump(mode="json")))

    def get(self, run_id: str) -> RunStatus:
        return RunStatus.model_validate(self._request("GET", f"/v1/runs/{run_id}"))

    def find(self, run_id: str) -> RunStatus | None:
        """The run, or None when the service never saw it (404)."""
        body = self._request("GET", f"/v1/runs/{run_id}", missing_ok=True)
        return None if body is None else RunStatus.model_validate(body)

    def recent(self, limit: int = 50) -> list[RunStatus]:
        return [RunStatus.model_validate(r) for r in self._request("GET", "/v1/runs", params={"limit": limit})]

    def wait(self, run_id: str, *, timeout: float = 3600.0, poll: float = 1.0) -> RunStatus:
        """Poll until the run finished (succeeded or failed); TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.get(run_id)
            if status.state.finished:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {status.state.value} after {timeout:.0f}s")
            time.sleep(poll)

    def healthy(self) -> bool:
        try:
            return self._http.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def _request(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise DataRunError(f"data-run service at {self._http.base_url}: {type(exc).__name__}: {exc}") from exc
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise DataRunError(f"{method} {path}: HTTP {response.status_code}: {detail}")
        return response.json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DataRunClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
