"""The export section of a flow that reads a REST API: ``type: http``.

    export:
      type: http
      connection: Shop API
      path: /orders
      query: {status: paid}
      records: data.items            # where the records are ($ or empty: a top-level array)
      pagination: {type: page, param: page, size: 100, size_param: per_page}
      since: {field: updated_at, param: updated_since, lag_seconds: 60}

Pagination is one of ``page`` (a page number), ``offset`` (offset and limit), ``cursor`` (a
value of the body sent back as a query parameter), ``link`` (the ``Link: <...>; rel="next"``
header) or ``next_url`` (a next URL in the body); it stops at an empty page, at a page shorter
than ``size`` (``stop: short``, the default when ``size`` is given), when no next page is
named, or after ``max_pages``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo
from pydantic_core import InitErrorDetails

from segbridge.exports.document import DocumentPart, ExportBase, NotBlank, located

PagingKind = Literal["page", "offset", "cursor", "link", "next_url"]
QueryValue = str | int | float | bool
NEEDS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "offset": (("size", "give the page size (the limit), e.g. 100"),),
    "cursor": (("cursor_path", "name where the body gives the next cursor, e.g. "
                               "meta.next_cursor"),
               ("cursor_param", "name the query parameter the cursor goes in, e.g. cursor")),
    "next_url": (("next_path", "name where the body gives the next page's URL, e.g. "
                               "links.next"),),
}


class Pagination(DocumentPart):
    """How the API gives its records page after page, and when to stop."""

    shape: ClassVar[str] = "use e.g. {type: page, param: page, size: 100, size_param: per_page}"
    hints: ClassVar[Mapping[str, str]] = {
        "type": "use one of: page, offset, cursor, link, next_url",
        "size": "use a whole number of records per page, 1 or more",
        "start": "use the first page's number, e.g. 1 or 0",
        "max_pages": "use a whole number of pages, 1 or more",
        "stop": "use short (a page shorter than size is the last) or empty (an empty page is)",
    }

    type: PagingKind
    param: NotBlank | None = None
    start: int = 1
    size: Annotated[int, Field(ge=1, le=100_000)] | None = None
    size_param: NotBlank | None = None
    cursor_path: NotBlank | None = None
    cursor_param: NotBlank | None = None
    next_path: NotBlank | None = None
    stop: Literal["short", "empty"] | None = None
    max_pages: Annotated[int, Field(ge=1)] | None = None

    @classmethod
    def more_problems(cls, data: Mapping[str, object],
                      info: ValidationInfo) -> list[InitErrorDetails]:
        problems = [located((name,), hint) for name, hint in NEEDS.get(str(data.get("type")), ())
                    if data.get(name) is None]
        if data.get("stop") == "short" and data.get("size") is None:
            problems.append(located(("stop",), "give size too: a page shorter than size is "
                                               "the last"))
        if data.get("size_param") is not None and data.get("size") is None:
            problems.append(located(("size",), "give the page size to send in size_param"))
        return problems

    def stop_rule(self) -> str:
        return self.stop or ("short" if self.size is not None else "empty")


class Since(DocumentPart):
    """An incremental export: records changed since the last successful run, less a lag."""

    shape: ClassVar[str] = "use {field: updated_at, param: updated_since, lag_seconds: 60}"
    hints: ClassVar[Mapping[str, str]] = {
        "field": "name the record field that says when it changed, e.g. updated_at",
        "param": "name the query parameter the API filters on, e.g. updated_since",
        "lag_seconds": "use a whole number of seconds, 0 or more",
        "format": "use iso (2026-01-31T12:00:00Z) or epoch (seconds since 1970)",
    }

    field: NotBlank
    param: NotBlank
    lag_seconds: Annotated[int, Field(ge=0)] = 0
    format: Literal["iso", "epoch"] = "iso"
    until_param: NotBlank | None = None
    start: NotBlank | None = None


class HttpExport(ExportBase):
    """The records an API answers, page after page, on an HTTP connection."""

    hints: ClassVar[Mapping[str, str]] = {
        **ExportBase.hints, "connection": "name an HTTP connection",
        "method": "use GET or POST",
        "path": "write the path after the connection's base URL, e.g. /orders",
        "query": "use a mapping of query parameters, e.g. {status: paid}",
        "body": "use a JSON object or array (sent with POST)",
        "records": "name where the records are, e.g. data.items ($ for a top-level array)",
        "format": "use json or ndjson",
        "requests_per_second": "use a number of requests per second greater than 0",
        "timeout_seconds": "use a number of seconds greater than 0",
        "max_attempts": "use a whole number of tries from 1 to 20",
    }
    problem_order: ClassVar[tuple[str, ...]] = ("type", "connection", "path", "records",
                                                "pagination", "since", "key_field")

    type: Literal["http"]
    connection: str = Field(description="an HTTP connection, by name or id")
    method: Literal["GET", "POST"] = "GET"
    path: str = "/"
    query: dict[str, QueryValue] = Field(default_factory=dict)
    body: dict[str, Any] | list[Any] | None = None
    records: str = "$"
    format: Literal["json", "ndjson"] = "json"
    pagination: Pagination | None = None
    since: Since | None = None
    requests_per_second: Annotated[float, Field(gt=0, le=10_000)] | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 5

    @classmethod
    def more_problems(cls, data: Mapping[str, object],
                      info: ValidationInfo) -> list[InitErrorDetails]:
        problems = []
        path = data.get("path")
        if isinstance(path, str) and not path.startswith("/"):
            problems.append(located(("path",), "start the path with /, e.g. /orders (the "
                                               "connection's base URL names the host)"))
        paging = data.get("pagination")
        kind = paging.get("type") if isinstance(paging, Mapping) else None
        if data.get("format") == "ndjson" and kind in ("cursor", "next_url"):
            problems.append(located(("pagination", "type"),
                                    "an NDJSON answer has no body to read a cursor or a next "
                                    "URL from; use page, offset or link"))
        return problems

    def connection_name(self) -> str:
        return self.connection


HTTP_EXPORT_MODELS: Mapping[str, type[ExportBase]] = {"http": HttpExport}
