"""A run's job: deferred with two procrastinate locks, and the jobs of runs as the queue holds
them.

- ``queueing_lock = run id``: procrastinate refuses a second *waiting* job with the same
  queueing lock, so a run never waits twice in the queue (an API call and a take-over racing
  to enqueue it: one job).
- ``lock = flow:<flow id>``: procrastinate starts no job while another job with the same lock
  is being executed, so two runs of one flow (a run and the retry run after it, a run given
  back and its next job) never execute at once, on any worker. The run's lease (``runs.store``)
  remains the fence: a worker that lost it commits nothing more.

The run row is committed (``queued``) before its job is deferred. When deferring fails (the
database went away between the two), the run stays queued without a job; the take-over tick
(``worker``) enqueues it again once it is older than two leases. Nothing is lost.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from procrastinate import App
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.jobs import JobDeferrer
from sqlalchemy import select

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


def flow_lock(flow_id: str) -> str:
    return f"flow:{flow_id}"


def run_job(app: App, run_id: str, flow_id: str | None) -> JobDeferrer:
    """The run's job, with its queue and locks, ready to defer."""
    return app.configure_task(EXECUTE_RUN, queue=RUNS_QUEUE, queueing_lock=run_id,
                              lock=flow_lock(flow_id) if flow_id else f"run:{run_id}")


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
    whichever worker takes it. Nobody attaches to it (``attach`` is the in-process queue's)."""

    def __init__(self, db: Database, url: str) -> None:
        super().__init__()
        self._db = db
        self._url = url
        self._app: App | None = None
        self._opening = threading.Lock()

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
