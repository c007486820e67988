"""The Application list: every application segbridge can connect to, Segment first."""

from __future__ import annotations

from functools import cache

from segbridge.apps.base import Registry


@cache
def default_registry() -> Registry:
    from segbridge.apps.segment.app import SegmentApplication

    registry = Registry()
    registry.add(SegmentApplication())
    return registry
