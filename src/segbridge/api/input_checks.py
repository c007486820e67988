"""Checks on every API request's input that no single schema can make.

NUL characters: PostgreSQL text cannot hold them (the request failed with a 500 there, found
by the schemathesis contract run) and SQLite stored them silently. No name, email, id,
setting or record field of segbridge needs one, so the API refuses them in the path, the
declared query parameters and JSON bodies, with a 422 naming the field, the same on both
databases. Raw bodies (uploads, YAML) are left to their readers: they are not read here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant

from segbridge.core.errors import FieldProblem, ValidationFailed

NUL = "\x00"
JSON_TYPES = ("application/json",)


async def refuse_nul_characters(request: Request) -> None:
    problems = [FieldProblem(field, "remove the NUL character (\\u0000); segbridge "
                                    "does not store it")
                for field in _fields_with_nul(request, await _json_body(request))]
    if problems:
        raise ValidationFailed(problems)


def _fields_with_nul(request: Request, body: Any) -> Iterator[str]:
    for name, value in request.path_params.items():
        if NUL in str(value):
            yield name
    for name in _declared_query(request):
        if any(NUL in value for value in request.query_params.getlist(name)):
            yield name
    yield from _in_json(body, "")


def _declared_query(request: Request) -> list[str]:
    dependant = getattr(request.scope.get("route"), "dependant", None)
    return list(_query_names(dependant)) if isinstance(dependant, Dependant) else []


def _query_names(dependant: Dependant) -> Iterator[str]:
    for param in dependant.query_params:
        yield param.alias
    for sub in dependant.dependencies:
        yield from _query_names(sub)


async def _json_body(request: Request) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method in ("GET", "HEAD", "OPTIONS") or content_type not in JSON_TYPES:
        return None
    try:
        return await request.json()
    except ValueError:
        return None  # not JSON: FastAPI answers 400 for it


def _in_json(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, str):
        if NUL in value:
            yield path or "body"
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if NUL in str(key):
                yield child
            yield from _in_json(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _in_json(item, f"{path}.{index}" if path else str(index))
