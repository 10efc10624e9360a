"""The data-run service: app factory and `serve` for the CLI (`relmodel data-service`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from relmodel.tasks.app import configure
from relmodel.tasks.service.config import Settings
from relmodel.tasks.service.metrics import ServiceMetrics
from relmodel.tasks.service.routes import health, runs
from relmodel.tasks.service.runner import RunManager, StepRunner, step_runner
from relmodel.tasks.service.store import RunStore


def create_app(settings: Settings | None = None, *,
               runner: Callable[[str], StepRunner] = step_runner) -> FastAPI:
    """Build the service; run state lives in the Redis of `settings`, shards go to its broker.
    `runner` maps a kind to its step's `run(params)` (the planner's step modules)."""
    settings = settings or Settings()
    configure(settings.broker_url)
    client = redis.Redis.from_url(settings.state_url, socket_timeout=10, socket_connect_timeout=5,
                                  health_check_interval=10)
    store = RunStore(client, settings.key_prefix)
    metrics = ServiceMetrics()
    manager = RunManager(store, metrics, max_active=settings.max_active_runs, lease_seconds=settings.lease_seconds,
                         runner=runner)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        manager.start()
        yield
        manager.stop()
        client.close()

    app = FastAPI(title="relmodel data runs", version="1", lifespan=lifespan,
                  description="CoT generation, pass@N sampling, difficulty scoring and data preparation "
                              "as sharded Celery runs.")
    app.state.settings, app.state.store, app.state.manager, app.state.metrics = settings, store, manager, metrics
    app.include_router(runs.router)
    app.include_router(health.router)

    @app.exception_handler(RedisError)
    async def redis_unavailable(_: Request, exc: RedisError) -> JSONResponse:
        return JSONResponse({"detail": f"run store unavailable: {exc}"}, status_code=503)

    return app


def serve(host: str | None = None, port: int | None = None, log_level: str = "info") -> None:
    """Run the service with uvicorn until stopped."""
    import uvicorn

    settings = Settings()
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port, log_level=log_level)
