"""The public forms of flows, runs, record errors and integrations, defined once.

The services answer these models; the API declares them as its response models (so the
OpenAPI document describes every answer), the pages read their attributes and the CLI prints
``as_json()``. Their JSON is the one the API has always answered: the same keys, values and
nulls (times are ISO-8601 text in UTC, as ``iso`` writes them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from segbridge.connections.views import iso
from segbridge.core.public import PublicForm as PublicForm  # the base, shared with connections
from segbridge.flows.document import FlowDocument, stored_flow_document
from segbridge.runs.diff import DIFF_COUNTS, is_diffed
from segbridge.runs.lifecycle import RunStatus
from segbridge.storage.models import Flow, RecordErrorRow, Run

RunCounts = dict[str, int | dict[str, dict[str, int]]]
"""exported, sent, failed, ignored, retried, batches; ``imports``: name -> sent, failed,
ignored."""


class RunPublic(PublicForm):
    id: str
    flow_id: str
    status: RunStatus
    trigger: str = Field(description="manual, schedule or retry")
    fresh_message_ids: bool
    counts: RunCounts
    checkpoint: int = Field(description="records delivered in order: a resumed run skips them")
    progress: float | None = Field(description="the share of the input read, when known")
    message: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    duration_seconds: float | None
    retry_of_run: str | None = Field(description="the run whose errors this run retries")


class RunOfFlowPublic(RunPublic):
    """A run in the account's list of runs: with its flow's name."""

    flow_name: str


class RecordErrorPublic(PublicForm):
    """A record that could not be sent, and why; ``data`` and ``raw`` are null for a role
    that may not see record data (``data_hidden`` says so)."""

    id: str
    flow_id: str
    run_id: str
    import_name: str | None = Field(alias="import", description="null: every import")
    position: int
    ref: str = Field(description="where the record came from: line 12, row 7, id=42")
    step: str
    field: str | None
    reason: str
    http_status: int | None
    retriable: bool
    data: dict[str, object] | None
    raw: str | None
    data_hidden: bool
    status: str = Field(description="open, resolved, retrying or retried")
    attempts: int
    created_at: str | None
    resolved_at: str | None


class SchedulePublic(PublicForm):
    cron: str
    timezone: str | None


class FlowPublic(PublicForm):
    id: str
    name: str
    integration_id: str
    integration: str
    enabled: bool
    definition: FlowDocument = Field(description="the flow as code (connections by name)")
    missing: list[str] = Field(description="what an unfinished flow (of the flow builder) "
                                           "lacks before it can run; empty when complete")
    schedule: SchedulePublic | None
    next_run_at: str | None
    cursor: dict[str, object] | None = Field(description="where an incremental export is")
    active_run_id: str | None
    last_run: RunPublic | None
    created_at: str | None
    updated_at: str | None


class NamedRef(PublicForm):
    id: str
    name: str


class IntegrationPublic(PublicForm):
    id: str
    name: str
    connections: list[NamedRef]
    flows: list[NamedRef]


class UploadPublic(PublicForm):
    """An uploaded file: use ``id`` as a file export's ``upload``."""

    id: str
    filename: str
    size: int = Field(description="bytes")


class PreviewCall(PublicForm):
    import_name: str = Field(alias="import")
    call: dict[str, object] = Field(description="the call as it would be sent")
    sync: Literal["new", "changed", "unchanged"] | None = Field(
        default=None, description="an import with sync: changed or new: how the record "
                                  "compares with the import's snapshot")
    sends: bool | None = Field(default=None, description="whether a run would send it "
                                                         "(sync: changed or new)")


class PreviewError(PublicForm):
    step: str
    import_name: str | None = Field(default=None, alias="import",
                                    description="absent: every import")
    field: str | None
    reason: str


class PreviewRecord(PublicForm):
    position: int
    ref: str
    data: dict[str, object] | None
    calls: list[PreviewCall]
    errors: list[PreviewError]
    ignored: bool = Field(description="a filter left the record out")


class PreviewPublic(PublicForm):
    """A dry run: the calls the first records would become, and their errors."""

    records: list[PreviewRecord]
    sent: bool = Field(description="always false: a preview sends nothing")


def public_run(run: Run) -> RunPublic:
    return RunPublic(**_run_fields(run))


def public_run_of_flow(run: Run, flow_name: str) -> RunOfFlowPublic:
    return RunOfFlowPublic(**_run_fields(run), flow_name=flow_name)


def _run_fields(run: Run) -> dict[str, object]:
    seconds = None
    if run.started_at and run.finished_at:
        seconds = round((run.finished_at - run.started_at).total_seconds(), 3)
    return {
        "id": run.id, "flow_id": run.flow_id, "status": run.status, "trigger": run.trigger,
        "fresh_message_ids": run.fresh_message_ids, "counts": _with_diff_counts(run),
        "checkpoint": run.checkpoint, "progress": run.progress, "message": run.message,
        "created_at": iso(run.created_at), "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at), "duration_seconds": seconds,
        "retry_of_run": run.definition.get("retry_of_run"),
    }


def _with_diff_counts(run: Run) -> dict[str, Any]:
    """The run's counts, each diffed import's new, changed, unchanged and deleted given even
    when 0 (a run counts only what happened; the CLI and the UI show all four)."""
    counts = dict(run.counts or {})
    definition = run.definition or {}
    if "retry_errors" in definition:  # (a retry counts what it sent only)
        return counts
    imports = {name: dict(values) for name, values in counts.get("imports", {}).items()}
    for step in definition.get("imports", []):
        if is_diffed(step):
            per = imports.setdefault(str(step.get("name")), {})
            for key in DIFF_COUNTS:
                per.setdefault(key, 0)
    counts["imports"] = imports
    return counts


def public_error(error: RecordErrorRow, *, with_data: bool = True) -> RecordErrorPublic:
    """A record error; without the record's ``data`` and ``raw`` for a role that may not see
    record data."""
    return RecordErrorPublic(
        id=error.id, flow_id=error.flow_id, run_id=error.run_id,
        import_name=error.import_name, position=error.position, ref=error.ref,
        step=error.step, field=error.field, reason=error.reason,
        http_status=error.http_status, retriable=error.retriable,
        data=error.data if with_data else None, raw=error.raw if with_data else None,
        data_hidden=not with_data, status=error.status, attempts=error.attempts,
        created_at=iso(error.created_at), resolved_at=iso(error.resolved_at))


def public_flow(flow: Flow, integration_name: str, last_run: Run | None) -> FlowPublic:
    definition = stored_flow_document(document(flow.definition))
    return FlowPublic(
        id=flow.id, name=flow.name, integration_id=flow.integration_id,
        integration=integration_name, enabled=flow.enabled,
        definition=definition, missing=definition.missing_parts(),
        schedule=(SchedulePublic(cron=flow.schedule_cron, timezone=flow.schedule_timezone)
                  if flow.schedule_cron else None),
        next_run_at=iso(flow.next_run_at), cursor=flow.cursor,
        active_run_id=flow.active_run_id,
        last_run=public_run(last_run) if last_run else None,
        created_at=iso(flow.created_at), updated_at=iso(flow.updated_at))


def document(definition: Mapping[str, object]) -> dict[str, object]:
    """The flow as code: the stored definition without resolved ids."""
    doc = {k: v for k, v in definition.items() if k not in ("retry_errors", "retry_of_run")}
    if doc.get("export") is not None:  # absent from an unfinished flow
        doc["export"] = _without_id(doc["export"])
    imports = doc.get("imports", [])
    doc["imports"] = [_without_id(step) for step in imports] if isinstance(imports, list) else []
    return doc


def _without_id(part: object) -> dict[str, object]:
    items = part.items() if isinstance(part, Mapping) else ()
    return {k: v for k, v in items if k != "connection_id"}
