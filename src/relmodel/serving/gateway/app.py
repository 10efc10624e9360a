"""The relevance gateway: app factory and `run_gateway` for the CLI."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response
from prometheus_client import Gauge

from relmodel.serving.gateway.config import Settings
from relmodel.serving.gateway.config_store import ConfigStore
from relmodel.serving.gateway.engine_client import EngineClient
from relmodel.serving.gateway.errors import install_handlers
from relmodel.serving.gateway.metrics import GatewayMetrics
from relmodel.serving.gateway.routes import health, relevance


def create_app(settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """Build the gateway; `transport` lets a caller route engine calls in-process."""
    settings = settings or Settings()
    store = ConfigStore(settings.config_path, settings.config_check_interval_s)
    client = EngineClient(settings.engine_url, connect_timeout_s=settings.engine_connect_timeout_s,
                          timeout_s=settings.engine_timeout_s, max_connections=settings.max_connections,
                          transport=transport)
    metrics = GatewayMetrics()
    Gauge("relmodel_gateway_config_loads", "CumPT configs loaded since start.",
          registry=metrics.registry).set_function(lambda: store.reloads)
    Gauge("relmodel_gateway_cumpt_beta", "CumPT beta in force (-1: none).",
          registry=metrics.registry).set_function(lambda: _beta(store))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        store.refresh()
        yield
        await client.aclose()

    app = FastAPI(
        title="relmodel relevance gateway",
        version="0.1.0",
        description="Post-CoT relevance scoring: first-token grade probabilities, CumPT tiers, tiered ranking.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.config_store = store
    app.state.engine_client = client
    app.state.metrics = metrics
    install_handlers(app)
    app.include_router(relevance.router)
    app.include_router(health.router)

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        if path != "/metrics":
            metrics.requests.labels(path, str(response.status_code)).inc()
            metrics.latency.labels(path).observe(time.perf_counter() - start)
        return response

    return app


def _beta(store: ConfigStore) -> float:
    config = store.current()
    return config.beta if config else -1.0


def run_gateway(config_path: str, engine_url: str, host: str = "0.0.0.0", port: int = 8080,
                log_level: str = "info") -> None:
    """Blocking: serve the gateway; other settings come from RELMODEL_GATEWAY_* variables."""
    import uvicorn

    settings = Settings(config_path=config_path, engine_url=engine_url)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
