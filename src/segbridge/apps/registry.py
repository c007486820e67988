"""The Application list: every application segbridge can connect to, Segment first."""

from __future__ import annotations

from segbridge.apps.base import Registry


def default_registry() -> Registry:
    """A fresh registry of the built-in applications (one per runtime)."""
    from segbridge.apps.database.app import DatabaseApplication
    from segbridge.apps.segment.app import SegmentApplication

    registry = Registry()
    registry.add(SegmentApplication())
    registry.add(DatabaseApplication())
    return registry
