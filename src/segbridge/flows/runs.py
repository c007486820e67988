"""Run records in the database: the state machine, counts, checkpoints and record errors.

    queued -> running -> succeeded | completed_with_errors | failed | canceled
                 ^  |
                 |  v
                paused      (the receiver cannot be reached; resumes when it can)

Written once per chunk of records (counts, checkpoint and that chunk's errors in one
transaction), never per record.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from segbridge.core.clock import utcnow
from segbridge.core.errors import Conflict
from segbridge.core.ids import new_id
from segbridge.flows.counts import COUNT_KEYS, ErrorRow, Tally
from segbridge.storage.db import Database
from segbridge.storage.models import Connection, Flow, RecordError, Run

ACTIVE = ("queued", "running", "paused", "canceling")
FINISHED = ("succeeded", "completed_with_errors", "failed", "canceled")


def owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def empty_counts(import_names: Iterable[str] = ()) -> dict[str, Any]:
    counts: dict[str, Any] = dict.fromkeys(COUNT_KEYS, 0)
    counts["imports"] = {name: {"sent": 0, "failed": 0, "ignored": 0} for name in import_names}
    return counts


def create_run(
    session: Session, flow: Flow, *, trigger: str, fresh_message_ids: bool,
    definition: dict[str, Any],
) -> Run:
    """Queue a run; refuse when the flow already has one queued, running or paused."""
    run_id = new_id("run")
    taken = session.execute(
        update(Flow).where(Flow.id == flow.id, Flow.active_run_id.is_(None))
        .values(active_run_id=run_id))
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"The flow '{flow.name}' is already running (run {flow.active_run_id}); "
                       "wait for it to finish or cancel it.")
    names = [step["name"] for step in definition.get("imports", [])]
    run = Run(id=run_id, account_id=flow.account_id, flow_id=flow.id, status="queued",
              trigger=trigger, fresh_message_ids=fresh_message_ids, definition=definition,
              counts=empty_counts(names))
    session.add(run)
    session.flush()
    return run


class RunStore:
    """The engine's writes, each a short transaction."""

    def __init__(self, db: Database, run_id: str) -> None:
        self.db = db
        self.run_id = run_id

    def start(self) -> Run:
        with self.db.session() as session:
            run = self._get(session)
            run.status = "running"
            run.owner = owner_name()
            run.heartbeat_at = utcnow()
            run.started_at = run.started_at or utcnow()
            # errors past the checkpoint belong to chunks that will be done again
            session.execute(delete(RecordError).where(
                RecordError.run_id == self.run_id, RecordError.position >= run.checkpoint))
            session.expunge(run)
            return run

    def commit_chunk(self, checkpoint: int, tally: Tally, errors: list[ErrorRow],
                     share: float | None = None) -> None:
        with self.db.session() as session:
            run = self._get(session)
            if errors:
                session.add_all([self._error(run, row) for row in errors])
            run.counts = tally.merged_into(run.counts)
            run.checkpoint = checkpoint
            run.progress = share
            run.heartbeat_at = utcnow()

    def set_status(self, status: str, message: str | None = None) -> None:
        with self.db.session() as session:
            run = self._get(session)
            if run.status not in FINISHED and run.status != "canceling":
                run.status = status
                if message is not None:
                    run.message = message

    def status(self) -> str:
        with self.db.session() as session:
            return self._get(session).status

    def finish(self, status: str, message: str | None, cursor: dict[str, Any] | None) -> None:
        with self.db.session() as session:
            run = self._get(session)
            run.status = status
            run.message = message
            run.finished_at = utcnow()
            flow = session.get(Flow, run.flow_id)
            if flow is not None:
                if flow.active_run_id == run.id:
                    flow.active_run_id = None
                if cursor is not None and status in ("succeeded", "completed_with_errors"):
                    flow.cursor = cursor

    def save_bounds(self, bounds: dict[str, Any]) -> None:
        with self.db.session() as session:
            self._get(session).export_bounds = bounds

    def set_connection_status(self, connection_id: str, status: str) -> None:
        with self.db.session() as session:
            connection = session.get(Connection, connection_id)
            if connection is not None:
                connection.status = status

    def _get(self, session: Session) -> Run:
        run = session.get(Run, self.run_id)
        if run is None:
            raise LookupError(f"run {self.run_id} does not exist")
        return run

    @staticmethod
    def _error(run: Run, row: ErrorRow) -> RecordError:
        return RecordError(
            id=new_id("err"), account_id=run.account_id, flow_id=run.flow_id, run_id=run.id,
            import_name=row.import_name, position=row.position, ref=row.ref[:200],
            step=row.step, field=row.field, reason=row.reason, http_status=row.http_status,
            retriable=row.retriable, data=row.data, raw=row.raw)


def orphaned_runs(db: Database) -> list[str]:
    """Runs left running by a process that is gone (killed, crashed): to resume at start."""
    with db.session() as session:
        rows = session.execute(select(Run.id, Run.owner).where(Run.status.in_(ACTIVE)))
        return [run_id for run_id, owner in rows if not _owner_alive(owner)]


def _owner_alive(owner: str | None) -> bool:
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False  # this process just started: whatever it owned before is orphaned
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

