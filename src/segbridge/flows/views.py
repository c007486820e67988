"""Public forms of flows, runs and record errors."""

from __future__ import annotations

from typing import Any

from segbridge.connections.views import iso
from segbridge.storage.models import Flow, RecordErrorRow, Run


def public_run(run: Run) -> dict[str, Any]:
    seconds = None
    if run.started_at and run.finished_at:
        seconds = round((run.finished_at - run.started_at).total_seconds(), 3)
    return {
        "id": run.id, "flow_id": run.flow_id, "status": str(run.status), "trigger": run.trigger,
        "fresh_message_ids": run.fresh_message_ids, "counts": run.counts,
        "checkpoint": run.checkpoint, "progress": run.progress, "message": run.message,
        "created_at": iso(run.created_at), "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at), "duration_seconds": seconds,
        "retry_of_run": run.definition.get("retry_of_run"),
    }


def public_error(error: RecordErrorRow, *, with_data: bool = True) -> dict[str, Any]:
    """A record error; without the record's ``data`` and ``raw`` for a role that may not see
    record data (``data_hidden`` says so)."""
    return {
        "id": error.id, "flow_id": error.flow_id, "run_id": error.run_id,
        "import": error.import_name, "position": error.position, "ref": error.ref,
        "step": error.step, "field": error.field, "reason": error.reason,
        "http_status": error.http_status, "retriable": error.retriable,
        "data": error.data if with_data else None, "raw": error.raw if with_data else None,
        "data_hidden": not with_data, "status": error.status, "attempts": error.attempts,
        "created_at": iso(error.created_at), "resolved_at": iso(error.resolved_at),
    }


def public_flow(flow: Flow, integration_name: str, last_run: Run | None) -> dict[str, Any]:
    return {
        "id": flow.id, "name": flow.name, "integration_id": flow.integration_id,
        "integration": integration_name, "enabled": flow.enabled,
        "definition": document(flow.definition),
        "schedule": ({"cron": flow.schedule_cron, "timezone": flow.schedule_timezone}
                     if flow.schedule_cron else None),
        "next_run_at": iso(flow.next_run_at), "cursor": flow.cursor,
        "active_run_id": flow.active_run_id,
        "last_run": public_run(last_run) if last_run else None,
        "created_at": iso(flow.created_at), "updated_at": iso(flow.updated_at),
    }


def document(definition: dict[str, Any]) -> dict[str, Any]:
    """The flow as code: the stored definition without resolved ids."""
    doc = {k: v for k, v in definition.items() if k not in ("retry_errors", "retry_of_run")}
    doc["export"] = {k: v for k, v in doc.get("export", {}).items() if k != "connection_id"}
    doc["imports"] = [{k: v for k, v in step.items() if k != "connection_id"}
                      for step in doc.get("imports", [])]
    return doc
