"""The Webhook application: records sent to a flow's own URL (``/hooks/<token>``).

It has no connection: the flow's export section says how requests are verified and batched
(``document.py``), the secret is set on the flow's listener. The server's listener commits
every verified request's records before answering 2xx; a run created for them reads them from
its own definition (``export.py``), so this application touches no database.
"""

from __future__ import annotations

from collections.abc import Mapping

from segbridge.apps.base import (
    Capability,
    ConnectionConfig,
    ExportRequest,
    OpenedExport,
    PingResult,
    SettingSpec,
)
from segbridge.apps.webhook.document import WEBHOOK_EXPORT_MODELS
from segbridge.apps.webhook.export import CURSOR, RECEIVED, ReceivedExport
from segbridge.core.access import Targets
from segbridge.core.errors import FieldProblem


class WebhookApplication:
    """Webhook: a flow's records arrive as requests to its own URL."""

    key = "webhook"
    name = "Webhook"
    description = ("Receive records as HTTP requests to the flow's own URL (HMAC, Basic or "
                   "token verification; Segment's X-Signature included).")
    capabilities = frozenset({Capability.EXPORT, Capability.LISTEN})
    settings: tuple[SettingSpec, ...] = ()
    connectable = False
    export_models = WEBHOOK_EXPORT_MODELS
    export_kinds = frozenset(WEBHOOK_EXPORT_MODELS)

    def validate(self, values: Mapping[str, str | None]) -> list[FieldProblem]:
        return []

    def targets(self, values: Mapping[str, str | None]) -> Targets:
        return Targets()

    def ping(self, config: ConnectionConfig, *, timeout: float) -> PingResult:
        return PingResult(ok=False, endpoint="", status=None, latency_ms=0.0, message_id=None,
                          cause="config", message="Webhook has no connection to test.")

    def open_export(self, request: ExportRequest) -> OpenedExport:
        """The records the run was created for (none for a preview or a run started by hand:
        records are delivered by the runs their arrival starts)."""
        export = ReceivedExport(list(request.export.get(RECEIVED) or []))
        last = export.last_id()
        return OpenedExport(export, cursor_after={CURSOR: last} if last is not None else None)
