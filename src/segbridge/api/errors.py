"""The one place that maps the exception tree to HTTP answers of one JSON shape:
``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from segbridge.core.errors import SegbridgeError, TooManyAttempts

log = logging.getLogger(__name__)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SegbridgeError, _segbridge_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


async def _segbridge_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SegbridgeError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    if isinstance(exc, TooManyAttempts):
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    return JSONResponse(error_body(exc.code, exc.message, exc.details),
                          status_code=exc.http_status, headers=headers)


async def _request_invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_problem(error) for error in exc.errors()]
    message = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return JSONResponse(error_body("validation_failed", message, problems), status_code=422)


def _problem(error: Any) -> dict[str, str]:
    location = [str(part) for part in error.get("loc", ()) if part not in ("body",)]
    field = ".".join(location) or "body"
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        message = "unknown field; remove it (see /api/docs for the fields)"
    elif kind == "json_invalid":
        field, message = "body", "the body is not valid JSON; send a JSON object"
    elif kind == "missing":
        message = "this field is required"
    elif field == "concurrency_level":
        message = "enter a whole number from 1 to 25, or null for the default of 25"
    else:
        message = str(error.get("msg", "invalid value"))
    return {"field": field, "message": message}


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 401: "not_authenticated"}
    return JSONResponse(error_body(codes.get(exc.status_code, "http_error"), str(exc.detail)),
                          status_code=exc.status_code)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error while serving a request", exc_info=exc)
    return JSONResponse(
        error_body("internal_error", "segbridge had an internal error; see the server log."),
        status_code=500)
