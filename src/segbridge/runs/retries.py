"""Retrying record errors: by a user (optionally with edited data) or automatically for the
intermittent ones (5xx, 429 and network failures that outlasted a run's own retries).

A retry run's export is the chosen errors, in order (position i = the i-th error). When it
ends, an error whose record went through is resolved; one that failed again is marked
``retried`` and the retry run's new error (with the new reason) is the open one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from segbridge.core.clock import utcnow
from segbridge.runs.counts import RecordErrorStatus
from segbridge.runs.lifecycle import COMPLETED, FINISHED, RunStatus
from segbridge.runs.store import create_run
from segbridge.storage.db import Database
from segbridge.storage.models import Flow, RecordErrorRow, Run

MAX_AUTOMATIC_ATTEMPTS = 3


def retry_definition(flow_definition: dict[str, Any], error_ids: list[str],
                     retry_of_run: str | None = None) -> dict[str, Any]:
    definition = dict(flow_definition)
    definition["retry_errors"] = list(error_ids)
    if retry_of_run:
        definition["retry_of_run"] = retry_of_run
    return definition


def after_run(db: Database, run_id: str) -> None:
    """Settle a retry run's errors; queue an automatic retry of intermittent errors."""
    with db.session() as session:
        run = session.get(Run, run_id)
        if run is None or run.status not in FINISHED:
            return
        if "retry_errors" in run.definition:
            _settle(session, run)
        if run.status in COMPLETED:
            _queue_automatic_retry(session, run)


def _settle(session: Any, run: Run) -> None:
    ids: list[str] = run.definition["retry_errors"]
    new_errors = list(session.scalars(
        select(RecordErrorRow).where(RecordErrorRow.run_id == run.id)))
    failed_positions = {error.position for error in new_errors}
    sources = {e.id: e for e in session.scalars(
        select(RecordErrorRow).where(RecordErrorRow.id.in_(ids)))}
    for error in new_errors:
        source = sources.get(ids[error.position]) if error.position < len(ids) else None
        error.attempts = (source.attempts if source else 0) + 1
    for position, error_id in enumerate(ids):
        source = sources.get(error_id)
        if source is None or source.status not in (RecordErrorStatus.OPEN,
                                                   RecordErrorStatus.RETRYING):
            continue
        source.status = RecordErrorStatus.RETRIED if position in failed_positions \
            else RecordErrorStatus.RESOLVED
        source.resolved_at = utcnow()


def _queue_automatic_retry(session: Any, run: Run) -> None:
    retriable = list(session.scalars(
        select(RecordErrorRow.id).where(
            RecordErrorRow.run_id == run.id, RecordErrorRow.status == RecordErrorStatus.OPEN,
            RecordErrorRow.retriable.is_(True),
            RecordErrorRow.attempts < MAX_AUTOMATIC_ATTEMPTS - 1)
        .order_by(RecordErrorRow.position)))
    flow = session.get(Flow, run.flow_id)
    if not retriable or flow is None or flow.active_run_id is not None:
        return
    base = {k: v for k, v in run.definition.items() if k not in ("retry_errors", "retry_of_run")}
    create_run(session, flow, trigger="auto-retry", fresh_message_ids=False,
               definition=retry_definition(base, retriable, retry_of_run=run.id))


def queued_retry_runs(db: Database, run_id: str) -> list[str]:
    with db.session() as session:
        rows = session.scalars(select(Run).where(Run.status == RunStatus.QUEUED,
                                                 Run.trigger == "auto-retry"))
        return [r.id for r in rows if r.definition.get("retry_of_run") == run_id]
