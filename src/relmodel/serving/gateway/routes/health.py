"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from relmodel.serving.gateway.deps import EngineDep, MetricsDep, StoreDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (liveness: never depends on the engine)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Engine unreachable or no valid config."}})
async def readyz(store: StoreDep, engine: EngineDep) -> JSONResponse:
    """Ready when the CumPT config is loaded and the engine answers /health."""
    config = store.current()
    engine_ok = await engine.healthy()
    checks: dict[str, Any] = {
        "config": {"ok": config is not None and not config.chat_template, "path": store.path,
                   "error": store.last_error, "model": config.model if config else None,
                   "beta": config.beta if config else None},
        "engine": {"ok": engine_ok, "url": engine.base_url},
    }
    ready = checks["config"]["ok"] and engine_ok
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                        status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(gateway_metrics: MetricsDep) -> Response:
    return Response(generate_latest(gateway_metrics.registry), media_type=CONTENT_TYPE_LATEST)
