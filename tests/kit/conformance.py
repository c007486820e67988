"""The base class an application's test class subclasses to get the whole battery.

    class TestSegmentConformance(ApplicationConformance):
        application = SegmentApplication()
        expected = {Case.REFUSED: Expect("refused"), ...}
        def provoke(self, case): ...

Each part reads the application's capabilities: Test connection for ``PING``, the resume
checks for ``EXPORT``, the splitting and accounting checks for ``IMPORT`` (a sink); a part the
application cannot do is skipped with the reason. A check that finds a bug in segbridge is
listed in ``known_bugs`` (test name -> the bug) and runs as a strict expected failure, so it
turns red the day the bug is fixed and the entry can go.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pytest

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
