"""A down or slow engine gives 503/504 with a clear JSON body, promptly; never a hang."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from relmodel.testing.waiting import free_port
from tests.serving.servers import serve

BODY = {"query": "red shoe", "items": [{"id": "a", "title": "red shoe"}]}


def slow_engine(delay_s: float) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {}

    @app.post("/v1/completions")
    async def completions() -> dict[str, str]:
        await asyncio.sleep(delay_s)
        return {}

    return app


def broken_engine() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/completions")
    async def completions() -> JSONResponse:
        return JSONResponse({"error": {"message": "CUDA out of memory", "type": "InternalServerError",
                                       "code": 500}}, status_code=500)

    return app


def test_engine_down_is_503(gateway: Callable[..., Any]) -> None:
    with gateway(engine_url=f"http://127.0.0.1:{free_port()}") as url:
        start = time.monotonic()
        response = httpx.post(f"{url}/v1/relevance/score", json=BODY, timeout=10)
        assert time.monotonic() - start < 5
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "engine_unavailable" and "unreachable" in error["message"]
        assert httpx.get(f"{url}/readyz").status_code == 503
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert 'relmodel_gateway_engine_errors_total{kind="engine_unavailable"} 1.0' in httpx.get(
            f"{url}/metrics").text


def test_slow_engine_times_out_with_504(gateway: Callable[..., Any]) -> None:
    with serve(slow_engine(30)) as engine, gateway(engine_url=engine, engine_timeout_s=0.5) as url:
        start = time.monotonic()
        response = httpx.post(f"{url}/v1/relevance/score", json=BODY, timeout=10)
        assert time.monotonic() - start < 5
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "engine_timeout"
        assert "did not answer within 0.5s" in response.json()["error"]["message"]


def test_engine_error_is_502_with_its_message(gateway: Callable[..., Any]) -> None:
    with serve(broken_engine()) as engine, gateway(engine_url=engine) as url:
        response = httpx.post(f"{url}/v1/relevance/score", json=BODY, timeout=10)
        assert response.status_code == 502
        assert "CUDA out of memory" in response.json()["error"]["message"]
