"""Typed FastAPI dependencies: routes declare what they need, the app state provides it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from relmodel.serving.config import CumPTConfig
from relmodel.serving.gateway.config import Settings
from relmodel.serving.gateway.config_store import ConfigStore
from relmodel.serving.gateway.engine_client import EngineClient
from relmodel.serving.gateway.errors import NotReady
from relmodel.serving.gateway.metrics import GatewayMetrics


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> ConfigStore:
    store: ConfigStore = request.app.state.config_store
    return store


def get_engine(request: Request) -> EngineClient:
    client: EngineClient = request.app.state.engine_client
    return client


def get_metrics(request: Request) -> GatewayMetrics:
    metrics: GatewayMetrics = request.app.state.metrics
    return metrics


def get_config(store: Annotated[ConfigStore, Depends(get_store)]) -> CumPTConfig:
    """The CumPT config in force (re-read if its file changed); 503 until one has loaded."""
    config = store.current()
    if config is None:
        raise NotReady(f"no CumPT config loaded from {store.path}: {store.last_error or 'not read yet'}")
    if config.chat_template:
        raise NotReady("this model needs its chat template; the gateway scores plain-completion models only")
    return config


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ConfigStore, Depends(get_store)]
EngineDep = Annotated[EngineClient, Depends(get_engine)]
MetricsDep = Annotated[GatewayMetrics, Depends(get_metrics)]
ConfigDep = Annotated[CumPTConfig, Depends(get_config)]
