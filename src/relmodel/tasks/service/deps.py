"""FastAPI dependencies: the app's settings, run store, run manager and metrics (built once, in
`create_app`; routes get them from here, tests through `app.dependency_overrides`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from relmodel.tasks.service.config import Settings
from relmodel.tasks.service.metrics import ServiceMetrics
from relmodel.tasks.service.runner import RunManager
from relmodel.tasks.service.store import RunStore


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> RunStore:
    store: RunStore = request.app.state.store
    return store


def get_manager(request: Request) -> RunManager:
    manager: RunManager = request.app.state.manager
    return manager


def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[RunStore, Depends(get_store)]
ManagerDep = Annotated[RunManager, Depends(get_manager)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
