"""The base class an application's test class subclasses to get the whole battery.

    class TestSegmentConformance(ApplicationConformance):
        application = SegmentApplication()
        expected = {Case.REFUSED: Expect("refused"), ...}
        def provoke(self, case): ...

Each part reads the application's capabilities: Test connection for ``PING``, the resume
checks for ``EXPORT``, the splitting and accounting checks for ``IMPORT`` (a sink); a part the
application cannot do is skipped with the reason. Here: what the application declares (its
settings, and a registry line that offers what it can do). A check that finds a bug in segbridge is
listed in ``known_bugs`` (test name -> the bug) and runs as a strict expected failure, so it
turns red the day the bug is fixed and the entry can go.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar

import pytest

from segbridge.apps.base import Capability, is_connectable
from segbridge.apps.registry import default_registry
from tests.kit.connection import ConnectionKit
from tests.kit.exports import ExportKit
from tests.kit.sinks import SinkKit


class ApplicationConformance(ConnectionKit, ExportKit, SinkKit):
    """Everything an application must pass; see the kit's parts for what to fill in."""

    known_bugs: ClassVar[Mapping[str, str]] = {}

    @pytest.fixture(autouse=True)
    def _known_bug(self, request: pytest.FixtureRequest) -> None:
        reason = self.known_bugs.get(request.node.name)
        if reason:
            request.applymarker(pytest.mark.xfail(strict=True, reason=reason))

    def test_the_registry_offers_what_the_application_can_do(self) -> None:
        """One registry line makes the application usable: listed where users pick one for a
        connection (when it has one), asked for its export kinds and as a destination."""
        registry = default_registry()
        key = self.application.key
        assert key in [app.key for app in registry.everything()], "not in default_registry()"
        listed = key in [app.key for app in registry.all()]
        assert listed == is_connectable(self.application)
        for kind in getattr(self.application, "export_kinds", ()):
            assert registry.exporter(kind).key == key
        if Capability.IMPORT in self.application.capabilities:
            assert registry.sink(key).key == key

    def test_settings_are_declared_once_and_shown_as_json(self) -> None:
        names = [spec.name for spec in self.application.settings]
        assert len(names) == len(set(names)), "a setting declared twice"
        for spec in self.application.settings:
            public = json.loads(json.dumps(spec.public()))
            assert public["secret"] == spec.secret and public["label"], spec.name
        if is_connectable(self.application):
            assert self.application.settings, "a connection with nothing to set"
