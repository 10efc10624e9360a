"""`/healthz` (Redis reachable) and `/metrics` (Prometheus text)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from relmodel.tasks.service.deps import MetricsDep, StoreDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(store: StoreDep, response: Response) -> dict[str, str]:
    try:
        store.ping()
    except RedisError as exc:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "unavailable", "redis": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok", "redis": "ok"}


@router.get("/metrics")
def metrics(service_metrics: MetricsDep) -> Response:
    return Response(generate_latest(service_metrics.registry), media_type=CONTENT_TYPE_LATEST)
