"""The Application list: every application segbridge can connect to, Segment first, and the
applications without a connection (Files) that a flow can still read from. The order of the
sources is the order a flow document lists its export kinds in (csv, ndjson, json, database).

Adding an application is one folder under ``apps/`` and one line here.
"""

from __future__ import annotations

from segbridge.apps.base import Registry


def default_registry() -> Registry:
    """A fresh registry of the built-in applications (one per runtime)."""
    from segbridge.apps.database.app import DatabaseApplication
    from segbridge.apps.files.app import FilesApplication
    from segbridge.apps.http.app import HttpApplication
    from segbridge.apps.segment.app import SegmentApplication
    from segbridge.apps.webhook.app import WebhookApplication

    registry = Registry()
    registry.add(SegmentApplication())
    registry.add(FilesApplication())
    registry.add(DatabaseApplication())
    registry.add(HttpApplication())
    registry.add(WebhookApplication())
    return registry
