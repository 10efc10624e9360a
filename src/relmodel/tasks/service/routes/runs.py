"""`/v1/runs`: start a data run (idempotent) and read its state, progress and counts."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Response, status

from relmodel.tasks.service.deps import ManagerDep, StoreDep
from relmodel.tasks.service.models import RunCreate, RunStatus

router = APIRouter(prefix="/v1/runs", tags=["runs"])


@router.post("", response_model=RunStatus, status_code=status.HTTP_201_CREATED,
             responses={200: {"model": RunStatus, "description": "The run already exists (not started again)."}})
def create_run(body: RunCreate, manager: ManagerDep, response: Response) -> RunStatus:
    """Start the run for these params; the same kind + params always names the same run."""
    run, started = manager.submit(body)
    if not started:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = f"/v1/runs/{run.id}"
    return run


@router.get("/{run_id}", response_model=RunStatus)
def get_run(run_id: str, store: StoreDep) -> RunStatus:
    run = store.get(run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id!r}")
    return run


@router.get("", response_model=list[RunStatus])
def list_runs(store: StoreDep, limit: int = Query(default=50, ge=1, le=1000)) -> list[RunStatus]:
    """The most recent runs first."""
    return store.recent(limit)
