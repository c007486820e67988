"""Opening a flow's HTTP export for a run or a preview: the connection's settings (its base
URL and token URL checked against the access policy) and, for an incremental export, the
window of change times it reads (saved as the run's bounds; its end stored on the flow after
the run succeeds). Every run's walk has an id in its bounds, so a resumed run in the same process
continues at the page it failed on (``walks.py``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from segbridge.apps.base import ExportRequest, OpenedExport
from segbridge.apps.http.connection import connection_targets, parse_connection
from segbridge.apps.http.export import HttpSource
from segbridge.apps.http.guard import check_url
from segbridge.apps.http.since import open_window
from segbridge.exports.errors import ExportError


def open_http_export(request: ExportRequest) -> OpenedExport:
    if request.connection is None:
        raise ExportError("An HTTP export needs an HTTP connection.", cause="config")
    connection = parse_connection(request.connection)
    for field, url in connection_targets(request.connection.values).urls:
        check_url(request.policy, url, field=field)
    export = request.export
    if request.preview:
        return OpenedExport(HttpSource(connection, export, policy=request.policy,
                                       limits=request.limits))
    saved = request.resume.saved_bounds or {}
    walk = str(saved.get("walk") or uuid.uuid4().hex)
    since = export.get("since")
    if since is None:
        return OpenedExport(HttpSource(connection, export, policy=request.policy,
                                       limits=request.limits, walk=walk),
                            bounds={"walk": walk})
    window = open_window(since, saved, request.resume.saved_cursor, datetime.now(UTC))
    source = HttpSource(connection, export, policy=request.policy, limits=request.limits,
                        window=window, walk=walk)
    return OpenedExport(source, bounds={"walk": walk, **window.to_json()},
                        cursor_after=window.cursor_after())
