"""The Application list: every application segbridge can connect to, Segment first, and the
applications without a connection (Files) that a flow can still read from.

Adding an application is one folder under ``apps/`` and one line here.
"""

from __future__ import annotations

from segbridge.apps.base import Registry


def default_registry() -> Registry:
    """A fresh registry of the built-in applications (one per runtime)."""
    from segbridge.apps.database.app import DatabaseApplication
    from segbridge.apps.files.app import FilesApplication
    from segbridge.apps.segment.app import SegmentApplication

    registry = Registry()
    registry.add(SegmentApplication())
    registry.add(DatabaseApplication())
    registry.add(FilesApplication())
    return registry
