"""JSON answers and errors of the management API.

An error has Segment's shape, ``code`` and ``message`` at the top level, and the same again
with its ``details`` (the field at fault, every problem) under ``error``:
``{"code", "message", "error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from segbridge.sandbox.store import InvalidSourceName, SourceNotFound

MAX_MANAGEMENT_BODY = 64 * 1024


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def error_response(err: ApiError) -> Response:
    body = {
        "code": err.code,
        "message": err.message,
        "error": {"code": err.code, "message": err.message, "details": err.details},
    }
    response = json_response(body, err.status)
    response.headers.update(err.headers)
    return response


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/422 ``ApiError``."""
    body = await request.body()
    if len(body) > MAX_MANAGEMENT_BODY:
        raise ApiError(413, "too_large", f"the body is over {MAX_MANAGEMENT_BODY:,} bytes")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_body", "the body must be a JSON object")
    return data


async def handle_api_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ApiError):
        return error_response(exc)
    if isinstance(exc, SourceNotFound):
        return error_response(ApiError(404, exc.code, str(exc)))
    if isinstance(exc, InvalidSourceName):
        return error_response(ApiError(422, exc.code, str(exc), {"field": "name"}))
    raise exc
