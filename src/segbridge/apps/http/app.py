"""The HTTP application: settings, validation, Test connection (a configurable request that
must answer 2xx) and the export of an API's records, page after page."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from segbridge.apps.base import (
    Capability,
    ConnectionConfig,
    ExportRequest,
    LookupRequest,
    OpenedExport,
    PingResult,
    SettingSpec,
)
from segbridge.apps.http.client import ApiClient
from segbridge.apps.http.connection import (
    SETTINGS,
    HttpConnection,
    connection_problems,
    connection_targets,
    parse_connection,
)
from segbridge.apps.http.document import HTTP_EXPORT_MODELS
from segbridge.apps.http.lookup import HttpLookup, lookup_problems
from segbridge.apps.http.source import open_http_export
from segbridge.core.access import Targets
from segbridge.core.errors import ApplicationError, FieldProblem


class HttpApplication:
    """Any REST API: read its records (JSON or NDJSON), page after page, or ask it for each
    record's row (a lookup step: one request per key)."""

    key = "http"
    name = "HTTP API"
    description = ("Read records from a REST API: JSON or NDJSON answers, page numbers, "
                   "offsets, cursors or next links, all at once or incrementally.")
    capabilities = frozenset({Capability.PING, Capability.EXPORT, Capability.LOOKUP})
    lookup_fields = ("request", "result")  # a lookup step's part this application reads
    export_models = HTTP_EXPORT_MODELS
    export_kinds = frozenset(HTTP_EXPORT_MODELS)
    settings: tuple[SettingSpec, ...] = SETTINGS

    def validate(self, values: Mapping[str, str | None]) -> list[FieldProblem]:
        return connection_problems(values)

    def targets(self, values: Mapping[str, str | None]) -> Targets:
        return connection_targets(values)

    def ping(self, config: ConnectionConfig, *, timeout: float) -> PingResult:
        started = time.perf_counter()
        try:
            connection = parse_connection(config)
        except ApplicationError as exc:
            return PingResult(ok=False, endpoint="", status=None, latency_ms=0.0,
                              message_id=None, cause=exc.cause, message=exc.message)
        return _ping(connection, timeout, started)

    def open_export(self, request: ExportRequest) -> OpenedExport:
        return open_http_export(request)

    def lookup_problems(self, lookup: Mapping[str, Any], field: str) -> list[FieldProblem]:
        return lookup_problems(lookup, field)

    def open_lookup(self, request: LookupRequest) -> HttpLookup:
        return HttpLookup(request)


def _ping(connection: HttpConnection, timeout: float, started: float) -> PingResult:
    client = ApiClient(connection, timeout=timeout)
    url = connection.base_url + connection.test_path
    endpoint = f"{connection.test_method} {client.shown(url)}"
    try:
        with client.open(connection.test_method, url) as response:
            status = response.status_code
    except ApplicationError as exc:
        return PingResult(ok=False, endpoint=endpoint, status=exc.status,
                          latency_ms=_since(started), message_id=None, cause=exc.cause,
                          message=client.mask(exc.message))
    finally:
        client.close()
    latency = _since(started)
    return PingResult(ok=True, endpoint=endpoint, status=status, latency_ms=latency,
                      message_id=None,
                      message=f"{endpoint} answered {status} in {latency:.0f} ms.")


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
