"""The one place that maps the exception tree to HTTP answers of one JSON shape:
``{"error": {"code", "message", "details"}}``.

Besides the tree: a body that is not JSON answers 400 (``malformed_body``), a well-formed
body with wrong fields 422 (``validation_failed``), a method a path does not take 405 with
``Allow`` listing the methods it does take.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount

from segbridge.api.schemas import NOT_BLANK, PATTERN_PROBLEMS
from segbridge.connections.validation import RATE_FIELDS
from segbridge.core.errors import SegbridgeError, TooManyAttempts
from segbridge.core.log_redaction import mask_path

log = logging.getLogger(__name__)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SegbridgeError, _segbridge_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
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
    if any(_body_unreadable(error) for error in exc.errors()):
        return JSONResponse(error_body("malformed_body", MALFORMED_BODY, [
            {"field": "body", "message": MALFORMED_BODY}]), status_code=400)
    problems = [_problem(error) for error in exc.errors()]
    message = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return JSONResponse(error_body("validation_failed", message, problems), status_code=422)


MALFORMED_BODY = ("the body is not valid JSON; send a JSON object with "
                  "`Content-Type: application/json` (see /api/docs for the fields)")


def _body_unreadable(error: Any) -> bool:
    """Not JSON at all (as opposed to JSON with wrong fields): unparseable, or raw bytes
    because it was not sent as ``application/json``."""
    if error.get("type") == "json_invalid":
        return True
    return tuple(error.get("loc", ())) == ("body",) and isinstance(error.get("input"), bytes)


def _problem(error: Any) -> dict[str, str]:
    location = [str(part) for part in error.get("loc", ()) if part not in ("body",)]
    field = ".".join(location) or "body"
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        message = "unknown field; remove it (see /api/docs for the fields)"
    elif kind == "json_invalid":
        field, message = "body", "the body is not valid JSON; send a JSON object"
    elif field == "confirm":
        message = ("resetting the snapshot makes the next run send every record again: "
                   "confirm with confirm: true")
    elif kind == "missing":
        message = "this field is required"
    elif kind in ("string_too_short", "string_pattern_mismatch") and location[-1:] == ["name"]:
        message = PATTERN_PROBLEMS[NOT_BLANK]
    elif kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern")
        message = PATTERN_PROBLEMS.get(pattern, str(error.get("msg", "invalid value")))
    elif kind == "string_too_long":
        limit = error.get("ctx", {}).get("max_length")
        message = f"use at most {limit} characters (this one has {len(error.get('input', ''))})"
    elif field == "concurrency_level":
        message = "enter a whole number from 1 to 25, or null for the default of 25"
    elif field in RATE_FIELDS:
        most = RATE_FIELDS[field][1]
        message = f"enter a number above 0 and at most {most:,.0f}, or null for no limit"
    else:
        message = str(error.get("msg", "invalid value"))
    return {"field": field, "message": message}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {400: "malformed_body", 401: "not_authenticated", 404: "not_found",
             405: "method_not_allowed"}
    headers = dict(exc.headers or {})
    message = str(exc.detail)
    if exc.status_code == 405:
        allowed = allowed_methods(request.app.router.routes, request.scope)
        headers["Allow"] = ", ".join(allowed)
        message = (f"{request.method} is not allowed on this path; "
                   f"it takes {', '.join(allowed)}.")
    return JSONResponse(error_body(codes.get(exc.status_code, "http_error"), message),
                        status_code=exc.status_code, headers=headers or None)


def allowed_methods(routes: list[BaseRoute], scope: Any) -> list[str]:
    """The methods of the path this URL matched first (as routing matched it): every route
    of that path, where Starlette's own 405 names only the first (GET where PUT and DELETE
    are also taken)."""
    matched: str | None = None
    methods: set[str] = set()
    for route in iter_route_contexts(routes):
        if isinstance(route.original_route, Mount) or route.path_format is None:
            continue
        if matched is None:
            match, _child = route.matches(scope)
            matched = route.path_format if match is not Match.NONE else None
        if route.path_format == matched:
            methods.update(route.methods or ())
    return sorted(methods)


async def _client_gone(request: Request, _exc: Exception) -> Response:
    """A client that closed its connection before its request's body was read (a browser
    aborting a request it replaced, a client timing out): nothing went wrong here, and the
    answer cannot be delivered. Logged at debug (it was an error with two tracebacks, which
    any anonymous client could write by closing a login form's upload)."""
    log.debug("the client closed the connection before sending its request (%s %s)",
              request.method, mask_path(request.url.path))
    return Response(status_code=400)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error while serving a request", exc_info=exc)
    return JSONResponse(
        error_body("internal_error", "segbridge had an internal error; see the server log."),
        status_code=500)
