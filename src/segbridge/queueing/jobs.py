"""A run's job: deferred with two procrastinate locks, and the jobs of runs as the queue holds
them.

- ``queueing_lock = run id``: procrastinate refuses a second *waiting* job with the same
  queueing lock, so a run never waits twice in the queue (an API call and a take-over racing
  to enqueue it: one job).
- ``lock = flow:<flow id>``: procrastinate starts no job while another job with the same lock
  is being executed, so two runs of one flow (a run and the retry run after it, a run given
  back and its next job) never execute at once, on any worker. The run's lease (``runs.store``)
  remains the fence: a worker that lost it commits nothing more.

A run and its job are written in one transaction (``defer_in``: procrastinate's own SQL
function, ``procrastinate_defer_jobs_v1``, on the caller's connection): the services create or
reopen the run and insert its job, then commit both, or neither. A worker sees the job (and is
notified of it) only once the run it names is committed. A job the run already has waiting
(its queueing lock) is no error: a savepoint undoes the second insert alone, and the caller's
transaction goes on.

``enqueue`` (outside a transaction: a run committed already) defers through procrastinate's
App. Should that fail, the run stays queued without a job; the take-over tick (``worker``)
enqueues it again once it is older than two leases. Nothing is lost.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass

from procrastinate import App
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.jobs import DEFAULT_PRIORITY, JobDeferrer
from procrastinate.manager import QUEUEING_LOCK_CONSTRAINT
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segbridge.queueing.app import EXECUTE_RUN, RUNS_QUEUE, sync_app
from segbridge.runs.queue import RunQueue
from segbridge.storage.db import Database
from segbridge.storage.models import Run

log = logging.getLogger(__name__)

ACTIVE_RUN_JOBS = (
    "SELECT id, status::text AS status, args->>'run_id' AS run_id FROM procrastinate_jobs "
    "WHERE task_name = %(task_name)s AND status IN ('todo', 'doing')")


@dataclass(frozen=True)
class RunJob:
    """A run's job waiting (``todo``) or being executed (``doing``)."""

    job_id: int
    status: str
    run_id: str


DEFER_JOB = text(
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW("
    "CAST(:queue AS varchar), CAST(:task AS varchar), CAST(:priority AS integer), "
    "CAST(:lock AS text), "
    "CAST(:queueing_lock AS text), CAST(:args AS jsonb), CAST(NULL AS timestamptz)"
    ")]::procrastinate_job_to_defer_v1[])) AS id")
"""procrastinate's own insert of a job (its ``defer_jobs`` query), for one run's job."""


def flow_lock(flow_id: str) -> str:
    return f"flow:{flow_id}"


def run_lock(run_id: str, flow_id: str | None) -> str:
    """The lock a run's job holds while executed: its flow's (a run without one: its own)."""
    return flow_lock(flow_id) if flow_id else f"run:{run_id}"


def run_job(app: App, run_id: str, flow_id: str | None) -> JobDeferrer:
    """The run's job, with its queue and locks, ready to defer."""
    return app.configure_task(EXECUTE_RUN, queue=RUNS_QUEUE, queueing_lock=run_id,
                              lock=run_lock(run_id, flow_id))


def defer_in(session: Session, run_id: str, flow_id: str | None) -> bool:
    """Insert the run's job in the session's transaction (committed with it, or not at all);
    False when the run has a job waiting already (its queueing lock)."""
    try:
        with session.begin_nested():  # a refused insert undoes itself alone
            session.execute(DEFER_JOB, {
                "queue": RUNS_QUEUE, "task": EXECUTE_RUN, "priority": DEFAULT_PRIORITY,
                "lock": run_lock(run_id, flow_id),
                "queueing_lock": run_id, "args": json.dumps({"run_id": run_id})})
    except IntegrityError as refused:
        if _constraint(refused) != QUEUEING_LOCK_CONSTRAINT:
            raise
        log.info("run %s already waits in the queue", run_id)
        return False
    return True


def _constraint(error: IntegrityError) -> str | None:
    diag = getattr(error.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


def flow_of(db: Database, run_id: str) -> str | None:
    with db.session() as session:
        return session.scalar(select(Run.flow_id).where(Run.id == run_id))


async def defer_run_async(app: App, run_id: str, flow_id: str | None) -> bool:
    """Defer a run's job; False when one waits already (its queueing lock)."""
    try:
        await run_job(app, run_id, flow_id).defer_async(run_id=run_id)
    except AlreadyEnqueued:
        return False
    return True


async def active_run_jobs(app: App) -> dict[str, RunJob]:
    """The run jobs waiting or being executed, by run id."""
    rows = await app.connector.execute_query_all_async(ACTIVE_RUN_JOBS, task_name=EXECUTE_RUN)
    return {row["run_id"]: RunJob(row["id"], row["status"], row["run_id"]) for row in rows}


class JobQueue(RunQueue):
    """The queue with PostgreSQL: each started run becomes a procrastinate job, executed by
    whichever worker takes it, inserted in the transaction that starts the run
    (``enqueue_in``). Nobody attaches to it (``attach`` is the in-process queue's)."""

    def __init__(self, db: Database, url: str) -> None:
        super().__init__()
        self._db = db
        self._url = url
        self._app: App | None = None
        self._opening = threading.Lock()

    def enqueue_in(self, session: Session, run_id: str, flow_id: str | None) -> None:
        """The run's job, in the transaction that creates or reopens the run (``defer_in``)."""
        defer_in(session, run_id, flow_id)

    def enqueue(self, run_id: str) -> None:
        try:
            self._defer(run_id)
        except Exception:  # the run stays queued; the take-over tick enqueues it again
            log.warning("run %s: its job could not be enqueued now; it stays queued and is "
                        "enqueued again by a worker's take-over tick", run_id, exc_info=True)

    def _defer(self, run_id: str) -> None:
        flow_id = flow_of(self._db, run_id)
        try:
            run_job(self._opened(), run_id, flow_id).defer(run_id=run_id)
        except AlreadyEnqueued:
            log.info("run %s already waits in the queue", run_id)

    def _opened(self) -> App:
        with self._opening:
            if self._app is None:
                self._app = sync_app(self._url).open()
            return self._app

    def close(self) -> None:
        with self._opening:
            if self._app is not None:
                self._app.close()
                self._app = None
