"""orchestrator's response envelope `{Code, Message, Details}` and the error handling around it.

Every error the API returns is this envelope with `Code: "ERROR"` and a proper status (400 bad input,
401/403 auth, 404 unknown, 409 conflict, 503 a dependency is down); orchestrator's own clients only
look at `Code`, so they keep working. Nothing unexpected ever leaks as a 500 with a traceback: the
global handler logs it and answers a 500 envelope with a one-line message.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from libs.errors import BatonError, BusError

log = logging.getLogger(__name__)

OK = "OK"
ERROR = "ERROR"


class Envelope(BaseModel):
    """orchestrator's APIResponse."""

    Code: str
    Message: str
    Details: Any = None


class ApiError(Exception):
    """Raise from a route to answer the ERROR envelope with `status`."""

    def __init__(self, status: int, message: str, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers = headers


def ok(message: str, details: Any = None) -> JSONResponse:
    return JSONResponse(jsonable_encoder(Envelope(Code=OK, Message=message, Details=details)))


def error_response(
    status: int, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = jsonable_encoder(Envelope(Code=ERROR, Message=message, Details=details))
    return JSONResponse(body, status_code=status, headers=headers)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("path", "query", "body"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "bad request: " + "; ".join(parts)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the envelope."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail) if exc.detail else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = "no such API route"
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(BusError)
    async def _bus(_: Request, exc: BusError) -> JSONResponse:
        log.warning("api: NATS unavailable: %s", exc)
        return error_response(503, f"NATS unavailable: {exc}")

    @app.exception_handler(BatonError)
    async def _baton(_: Request, exc: BatonError) -> JSONResponse:
        log.warning("api: %s", exc)
        return error_response(503, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("api: unexpected error on %s %s", request.method, request.url.path)
        text = str(exc).strip().splitlines()
        return error_response(
            500, f"internal error: {type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
        )
