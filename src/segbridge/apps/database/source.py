"""Opening a flow's database export for a run or a preview: the connection's URL (checked
against the access policy) and password, and for an incremental export the window of cursor
values it reads.

A fresh run reads after the cursor the flow's last successful run stored (unless the cursor
column changed since) up to the column's maximum now; it saves those bounds, so a resumed run
reads the very same window. After the run succeeds, the flow stores the window's end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segbridge.apps.base import ConnectionConfig, ExportRequest, OpenedExport
from segbridge.apps.database.cursor import (
    CursorBounds,
    decode_cursor_value,
    encode_cursor_value,
    next_cursor_value,
)
from segbridge.apps.database.export import DatabaseExport
from segbridge.apps.database.url import targets_of
from segbridge.exports.errors import ExportError


def open_database_export(request: ExportRequest) -> OpenedExport:
    """The export of ``request``; an incremental one keeps the same bounds when resumed."""
    connection = _connection(request)
    url = str(connection.values.get("url") or "")
    request.policy.check_targets(targets_of(url, "export.connection"))
    password = connection.secrets.get("password")
    export_def = request.export
    query = export_def["query"]
    cursor = export_def.get("cursor")
    if cursor is None or request.preview:
        return OpenedExport(DatabaseExport(url, password, query, limits=request.limits,
                                           policy=request.policy))
    column = cursor["column"]
    export = DatabaseExport(url, password, query, cursor_column=column,
                            lag_seconds=cursor.get("lag_seconds"), limits=request.limits,
                            policy=request.policy, **_window(request, column))
    bounds = export.bounds()
    if bounds is None:
        return OpenedExport(export)
    return OpenedExport(export, bounds=bounds.to_json(), cursor_after={
        "column": column, "value": encode_cursor_value(next_cursor_value(bounds))})


def _connection(request: ExportRequest) -> ConnectionConfig:
    if request.connection is None:
        raise ExportError("A database export needs a Database connection.", cause="config")
    return request.connection


def _window(request: ExportRequest, column: str) -> dict[str, Any]:
    """Where the export starts (and, when resumed, ends)."""
    saved_bounds = request.resume.saved_bounds
    if saved_bounds:  # resumed: the same bounds as when the run started
        saved = CursorBounds.from_json(dict(saved_bounds))
        return {"last_cursor": saved.last, "upper_bound": saved.upper}
    return {"last_cursor": _saved_cursor(request.resume.saved_cursor, column)}


def _saved_cursor(saved: Mapping[str, Any] | None, column: str) -> Any:
    """The high-water mark of the last successful run, unless the cursor column changed."""
    if not saved or saved.get("column") != column:
        return None
    return decode_cursor_value(saved.get("value"))
