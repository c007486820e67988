"""Webhook passes the application conformance kit as a source: the records a run was created
for read the same twice, resume at any position, and show no secret. Webhook has no
connection (no Test connection) and its export cannot fail: its records are in the run.

One rule of the kit does not hold, on purpose: a webhook record's position is its row id (so
its messageId is the same in every run that sends it, and two equal payloads received apart
never share one), not its ordinal from 0. ``test_an_export_resumes_at_any_position_with_the_
same_records`` is therefore replaced here by the same check on those positions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from segbridge.apps.base import ResumeState
from segbridge.apps.webhook.app import WebhookApplication
from tests.kit import ApplicationConformance, Case, ExportSample
from tests.kit.exports import fingerprint

NO_CONNECTION = "Webhook has no connection: requests come to the flow's own URL"
RECEIVED = [[3, {"order_id": 1}], [4, {"order_id": 2, "items": [{"sku": "a"}]}],
            [9, {"order_id": 3, "note": None}], [10, {"order_id": 1}], [12, {}]]


class TestWebhookConformance(ApplicationConformance):
    application = WebhookApplication()
    not_applicable: ClassVar = {case: NO_CONNECTION for case in Case}
    export_samples = ("received", "nothing_yet")

    @contextmanager
    def export_sample(self, name: str, folder: Path) -> Iterator[ExportSample]:
        received = RECEIVED if name == "received" else []
        yield ExportSample({"type": "webhook", "received": received})

    def test_an_export_resumes_at_any_position_with_the_same_records(
        self, sample: str, tmp_path: Path,
    ) -> None:
        with self.export_sample(sample, tmp_path) as given:
            first = self.open(given, tmp_path)
            everything = [fingerprint(r) for r in first.export.records()]
            positions = [f[0] for f in everything]
            assert positions == [row_id for row_id, _payload in given.export["received"]]
            resumed = ResumeState(saved_bounds=first.bounds)
            for start in sorted({0, *positions, 11, 13}):
                again = self.open(given, tmp_path, resumed)
                assert [fingerprint(r) for r in again.export.records(start)] == \
                    [f for f in everything if f[0] >= start], f"resumed at {start}"
            last = positions[-1] if positions else None
            assert first.cursor_after == ({"webhook_through": last} if last else None)
