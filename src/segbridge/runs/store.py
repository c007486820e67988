"""Run records in the database: their status, counts, checkpoints and record errors.

Every status change goes through ``runs.lifecycle.transition`` (the statuses and the moves
between them are drawn there).

Written once per chunk of records (counts, checkpoint and that chunk's errors in one
transaction), never per record.

**Leases.** The process executing a run is its ``owner`` (``host:pid``) and renews
``heartbeat_at`` every ``run_lease_seconds``; every write of the run is conditional on still
being its owner. A run whose owner is gone (on this host: no such process) or silent for
twice the lease is *taken over* by a live server: one conditional ``UPDATE ... WHERE owner =
old AND heartbeat_at = old`` claims it, so of two servers exactly one wins. The new owner
resumes it from its checkpoint.

**A frozen owner** (a stopped process, a paused machine) may freeze inside one of its writes,
holding the run's row lock on PostgreSQL: a claim would wait for it for as long as it stays
frozen. So each write of the run (``_locking``) lets the server end its transaction once it
has sat idle for two leases (the owner counts as gone by then anyway: nothing it had not
committed is lost; back, its write fails and its run stops there, ``Engine._commit``, to be
taken over and resumed from its checkpoint), and a claim waits at most
``CLAIM_LOCK_WAIT`` for the row (the next take-over tick tries again).

**Crashes.** A run failed because a process died (its lanes kept dying) carries the message
prefix ``crashed:`` and may be resumed; a run failed for its data or configuration may not.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, delete, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from segbridge.core.clock import utcnow
from segbridge.core.errors import Conflict
from segbridge.core.ids import new_id
from segbridge.runs.counts import COUNT_KEYS, ErrorRow, Tally
from segbridge.runs.lifecycle import ACTIVE, COMPLETED, FINISHED, RunStatus, decided, transition
from segbridge.storage.db import Database
from segbridge.storage.models import Connection, Flow, RecordErrorRow, Run

CRASHED = "crashed: "  # the message prefix of a run failed by a crash: it may be resumed
SOURCE_UNAVAILABLE = "source unavailable: "  # the prefix of a run whose source stayed out of
# reach (retries spent): it may be resumed once the source answers, from its checkpoint
TAKEN_OVER = "taken over from "
CLAIM_LOCK_WAIT = "2s"  # how long a claim waits for a run's row (PostgreSQL's lock_timeout)
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock_timeout that ran out
_LEGACY_CRASH = re.compile(r"^lane \d+ ended unexpectedly")  # failed before leases existed


class LeaseLost(Exception):
    """Another process took the run over: this one must stop writing it (a signal inside
    the engine, never shown to a user)."""


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
    run = Run(id=run_id, account_id=flow.account_id, flow_id=flow.id, status=RunStatus.QUEUED,
              trigger=trigger, fresh_message_ids=fresh_message_ids, definition=definition,
              counts=empty_counts(names))
    session.add(run)
    session.flush()
    return run


class RunStore:
    """The engine's writes, each a short transaction, each only while this process owns the
    run (``LeaseLost`` once another process took it over)."""

    def __init__(self, db: Database, run_id: str, lease_seconds: int = 30) -> None:
        self.db = db
        self.run_id = run_id
        self.lease_seconds = lease_seconds
        self.owner = owner_name()
        self.note: str | None = None  # "taken over from ...": kept in the final message

    def start(self) -> Run:
        """Own the run (atomically: refused while another live process does) and mark it
        running; a run being canceled stays ``canceling``; a finished one is refused."""
        with self.db.session() as session:
            seen = self._get(session)
            holder = live_holder(seen, self.lease_seconds, me=self.owner)
            if holder is not None:
                raise Conflict(f"Run {self.run_id} is being executed by {holder}; it cannot "
                               "be resumed twice. Wait for it, or cancel it.")
            if not _claim(session, self.run_id, seen.owner, seen.heartbeat_at, self.owner):
                raise Conflict(f"Run {self.run_id} was just taken by another process.")
        with self.db.session() as session:
            run = self._get(session)
            if run.message and run.message.startswith(TAKEN_OVER):
                self.note = run.message
            if run.status in FINISHED:  # it ended meanwhile (another process finished it)
                raise Conflict(f"Run {self.run_id} is already {run.status}; nothing to execute.")
            if run.status != RunStatus.CANCELING:
                run.status = transition(run.status, RunStatus.RUNNING)
            run.started_at = run.started_at or utcnow()
            # errors past the checkpoint belong to chunks that will be done again
            session.execute(delete(RecordErrorRow).where(
                RecordErrorRow.run_id == self.run_id, RecordErrorRow.position >= run.checkpoint))
            session.expunge(run)
            return run

    def renew(self) -> bool:
        """The lease's heartbeat; False once another process owns the run."""
        with self.db.session() as session:
            self._locking(session)
            return self._hold(session)

    def commit_chunk(self, checkpoint: int, tally: Tally, errors: list[ErrorRow],
                     share: float | None = None) -> None:
        with self.db.session() as session:
            self._locking(session)
            self._own(session)  # first: the row stays locked until this commit
            run = self._get(session)
            if errors:
                session.add_all([self._error(run, row) for row in errors])
            run.counts = tally.merged_into(run.counts)
            run.checkpoint = checkpoint
            run.progress = share

    def set_status(self, status: RunStatus, message: str | None = None) -> None:
        """Paused or running again (the receiver gone or back), unless a cancel or an end
        came first: those win."""
        with self.db.session() as session:
            self._locking(session)
            self._own(session)
            run = self._get(session)
            if not decided(run.status):
                run.status = transition(run.status, status)
                if message is not None:
                    run.message = message

    def status(self) -> RunStatus:
        with self.db.session() as session:
            return RunStatus(self._get(session).status)

    def finish(self, status: RunStatus, message: str | None,
               cursor: dict[str, Any] | None) -> None:
        if self.note is not None:
            message = f"{message}; {self.note}" if message else self.note
        with self.db.session() as session:
            self._locking(session)
            self._own(session)
            run = self._get(session)
            run.status = transition(run.status, status)
            run.message = message
            run.finished_at = utcnow()
            flow = session.get(Flow, run.flow_id)
            if flow is not None:
                if flow.active_run_id == run.id:
                    flow.active_run_id = None
                if cursor is not None and status in COMPLETED:
                    flow.cursor = cursor

    def _locking(self, session: Session) -> None:
        """This transaction writes the run's row: on PostgreSQL, the server ends it if it sits
        idle for two leases (this process frozen while it held the row's lock)."""
        if _postgresql(session):
            idle_ms = 2 * self.lease_seconds * 1000
            session.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = {idle_ms}"))

    def _hold(self, session: Session) -> bool:
        renewed = session.execute(update(Run).where(Run.id == self.run_id,
                                                    Run.owner == self.owner)
                                  .values(heartbeat_at=utcnow()))
        return bool(renewed.rowcount == 1)  # type: ignore[attr-defined]

    def _own(self, session: Session) -> None:
        if not self._hold(session):
            raise LeaseLost(f"run {self.run_id} was taken over by another process")

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
    def _error(run: Run, row: ErrorRow) -> RecordErrorRow:
        return RecordErrorRow(
            id=new_id("err"), account_id=run.account_id, flow_id=run.flow_id, run_id=run.id,
            import_name=row.import_name, position=row.position, ref=row.ref[:200],
            step=row.step, field=row.field, reason=row.reason, http_status=row.http_status,
            retriable=row.retriable, data=row.data, raw=row.raw)


@dataclass(frozen=True)
class Orphan:
    """A run nobody executes any more, as seen when it was found (for the atomic claim)."""

    run_id: str
    owner: str | None
    heartbeat_at: datetime | None
    why: str


def orphaned_runs(db: Database, lease_seconds: int, *, busy: Iterable[str] = ()) -> list[Orphan]:
    """Queued, running or paused runs whose owner is gone: its process ended (this host), or
    no heartbeat for twice the lease (any host), or never started for as long. ``busy``: the
    runs this process executes now (their owner is this process)."""
    skip = set(busy)
    with db.session() as session:
        rows = session.execute(select(Run.id, Run.owner, Run.heartbeat_at, Run.created_at)
                               .where(Run.status.in_(ACTIVE)))
        found = []
        for run_id, owner, heartbeat_at, created_at in rows:
            if run_id in skip:
                continue
            why = _orphaned(owner, heartbeat_at or created_at, lease_seconds)
            if why is not None:
                found.append(Orphan(run_id, owner, heartbeat_at, why))
        return found


def take_over(db: Database, orphan: Orphan) -> bool:
    """Claim an orphaned run for this process; False when another process claimed it first
    (or its owner came back to life in between)."""
    note = f"{TAKEN_OVER}{orphan.owner or 'nobody'} ({orphan.why})"
    try:
        with db.session() as session:
            if _postgresql(session):  # its frozen owner may hold the row: not for long
                session.execute(text(f"SET LOCAL lock_timeout = '{CLAIM_LOCK_WAIT}'"))
            return _claim(session, orphan.run_id, orphan.owner, orphan.heartbeat_at,
                          owner_name(), message=note)
    except OperationalError as locked:
        if getattr(locked.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        return False  # its owner holds the row in a transaction: the next tick tries again


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def live_holder(run: Run, lease_seconds: int, *, me: str) -> str | None:
    """Who executes this run now (``owner``, with its last heartbeat), or None when nobody
    does (or this process does)."""
    if run.status not in ACTIVE or not run.owner or run.owner == me:
        return None
    if _orphaned(run.owner, run.heartbeat_at or run.created_at, lease_seconds) is not None:
        return None
    age = _age(run.heartbeat_at or run.created_at)
    return f"{run.owner} (last heartbeat {age:.0f} s ago)"


def failed_by_crash(status: str, message: str | None) -> bool:
    """A failed run whose process or lanes died, or whose source stayed out of reach, rather
    than a failure of its data or configuration: it may be resumed."""
    text = message or ""
    crashed = (text.startswith((CRASHED, SOURCE_UNAVAILABLE))
               or bool(_LEGACY_CRASH.match(text)))
    return status == RunStatus.FAILED and crashed


def _claim(session: Session, run_id: str, owner: str | None, heartbeat_at: datetime | None,
           new_owner: str, *, message: str | None = None) -> bool:
    values: dict[str, Any] = {"owner": new_owner, "heartbeat_at": utcnow()}
    if message is not None:
        values["message"] = message
    claimed = session.execute(update(Run).where(
        Run.id == run_id, _is(Run.owner, owner), _is(Run.heartbeat_at, heartbeat_at))
        .values(**values))
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]


def _is(column: Any, value: Any) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value  # type: ignore[no-any-return]


def _orphaned(owner: str | None, last_seen: datetime, lease_seconds: int) -> str | None:
    """Why nobody executes the run any more, or None while its owner may."""
    silent = _age(last_seen)
    if owner and _on_this_host(owner) and not _owner_alive(owner):
        return "its process had ended"
    if silent > 2 * lease_seconds:
        return f"no heartbeat for {silent:.0f} s"
    return None


def _age(moment: datetime) -> float:
    if moment.tzinfo is None:  # SQLite gives back naive UTC times
        moment = moment.replace(tzinfo=UTC)
    return (utcnow() - moment) / timedelta(seconds=1)


def _on_this_host(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    return host == socket.gethostname() and pid.isdigit()


def _owner_alive(owner: str | None) -> bool:
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False  # this process: the runs it executes are ``busy``, others are orphans
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(int(pid))


def _zombie(pid: int) -> bool:
    """A killed process its parent has not reaped yet still answers ``kill(pid, 0)``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


def reopen(session: Session, run: Run, lease_seconds: int) -> None:
    """Make a run ready to resume from its checkpoint (by this process or, with the job queue,
    any worker): one nobody executes any more, or one that failed by a crash (it takes its
    flow back, queued with no owner). Refused, saying why, otherwise."""
    if run.status in ACTIVE:
        holder = live_holder(run, lease_seconds, me=owner_name())
        if holder is not None:
            raise Conflict(f"Run {run.id} is being executed by {holder}; nothing to resume.")
        return
    if not failed_by_crash(run.status, run.message):
        raise Conflict(_not_resumable(run))
    taken = session.execute(update(Flow).where(Flow.id == run.flow_id,
                                               Flow.active_run_id.is_(None))
                            .values(active_run_id=run.id))
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"The flow of run {run.id} has another run in progress; wait for it to "
                       "end, then resume this one.")
    run.status = transition(run.status, RunStatus.QUEUED)
    why = "its source was out of reach" if (run.message or "").startswith(
        SOURCE_UNAVAILABLE) else "it crashed"
    run.message = f"resumed after {why} ({run.message})"
    run.finished_at = None
    # nobody owns it until an executor starts it: this process or, with the job queue, any
    # worker; a fresh heartbeat keeps the take-over away for two leases meanwhile
    run.owner = None
    run.heartbeat_at = utcnow()


def _not_resumable(run: Run) -> str:
    if run.status != RunStatus.FAILED:
        return f"Run {run.id} is {run.status}; nothing to resume."
    return (f"Run {run.id} failed for its data or configuration ({run.message}); only a run "
            "stopped by a crash (its process or a lane ended) or by a source out of reach can "
            "be resumed. Fix the cause and run the flow again.")
