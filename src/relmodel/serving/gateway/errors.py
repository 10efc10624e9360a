"""Gateway errors: each maps to one HTTP status and a JSON body that says what to do."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class GatewayError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(GatewayError):
    status, code = 422, "invalid_request"


class NotReady(GatewayError):
    status, code = 503, "not_ready"


class EngineUnavailable(GatewayError):
    status, code = 503, "engine_unavailable"


class EngineTimeout(GatewayError):
    status, code = 504, "engine_timeout"


class EngineFailed(GatewayError):
    status, code = 502, "engine_error"


class EngineRejected(GatewayError):
    """The engine refused the input (e.g. longer than the model's context): the caller's to fix."""

    status, code = 422, "engine_rejected_input"


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **({"details": details} if details else {})}}


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway(_: Request, exc: GatewayError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, **exc.details), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"loc": ".".join(str(p) for p in err.get("loc", ())), "msg": err.get("msg", "")}
            for err in exc.errors()
        ]
        message = "; ".join(f"{p['loc']}: {p['msg']}" for p in problems) or "invalid request"
        return JSONResponse(error_body("invalid_request", message, problems=problems), status_code=422)
