"""Runs passing between workers: taken over from a dead worker, given back by one stopping.

**Take-over** (a periodic tick, deduplicated across workers by procrastinate): a run is an
orphan by the run store's rule (``runs.store.orphaned_runs``: its owner process ended, on this
host, or no heartbeat for two leases, from any host; a queued run nobody started for two
leases). Its job decides what happens:

- a job waits (``todo``): nothing; a worker will take it (a long queue is no orphan);
- a job is being executed (``doing``) by a worker that died: the run is claimed (atomically,
  ``take_over``: one claimer wins), given back (``release``: below), and that job marked
  failed (which frees the flow's lock it held, so the new job can start). A new job rather
  than the old one put back: a worker that was only frozen and comes back finishes *its* job
  id, which must not end the job another worker now executes (procrastinate's finish does not
  check the worker);
- no job at all (deferring it failed, or it was lost): claimed and given back.

A job being executed whose run was never started (no owner) is left alone while its
procrastinate worker sends heartbeats: it is about to start.

**A dead worker's job of a run that ended** (killed after its run finished, before its job
did): marked failed once its worker is silent for two leases. The run needs nothing, but the
job held the flow's lock, and the flow's next run would wait behind it for ever.

**Give back** (SIGTERM): the worker stops taking jobs and gives back each run it executes
(``release``, one transaction: ``owner`` cleared by a write conditional on still owning it, the
run ``queued`` again, ``canceling`` if it is being canceled (``lifecycle.given_back``), and its
new job inserted, which waits on the flow's lock until this one ends). The engine finds its
lease gone at its next checkpoint or renewal and stops, committing nothing more; the next
worker starts it (``running`` again) from the last checkpoint with the same messageIds.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from procrastinate import App
from procrastinate.jobs import Status
from sqlalchemy import ColumnElement, case, update

from segbridge.core.clock import utcnow
from segbridge.queueing.app import EXECUTE_RUN
from segbridge.queueing.jobs import RunJob, active_run_jobs, defer_in
from segbridge.runs.lifecycle import ACTIVE, given_back
from segbridge.runs.store import Orphan, orphaned_runs, owner_name, take_over
from segbridge.storage.db import Database
from segbridge.storage.models import Run

log = logging.getLogger(__name__)

STALLED_JOBS_OF_ENDED_RUNS = (  # executed by a worker silent for two leases (or gone)
    "SELECT j.id FROM procrastinate_jobs j JOIN runs r ON r.id = j.args->>'run_id' "
    "LEFT JOIN procrastinate_workers w ON w.id = j.worker_id "
    "WHERE j.task_name = %(task_name)s AND j.status = 'doing' "
    "AND NOT (r.status = ANY(%(active)s)) "
    "AND (w.last_heartbeat IS NULL "
    "     OR w.last_heartbeat < NOW() - make_interval(secs => %(silence)s))")
WORKER_SILENCE = (
    "SELECT j.id, EXTRACT(EPOCH FROM (NOW() - w.last_heartbeat))::float AS silent "
    "FROM procrastinate_jobs j LEFT JOIN procrastinate_workers w ON w.id = j.worker_id "
    "WHERE j.id = %(job_id)s")


@dataclass(frozen=True)
class Handover:
    """What the take-over tick needs: the database, the app and the lease."""

    db: Database
    app: App
    lease_seconds: int


def release(db: Database, run_id: str, owner: str) -> bool:
    """Give the run back to the queue, if this owner still holds its lease: the lease
    released (its heartbeat restarts, so it is no orphan before its next job starts), the run
    queued again and its job inserted, in one transaction. False when the owner holds it no
    more (the run ended, or another process took it over): nothing is written."""
    with db.session() as session:
        released = session.execute(update(Run).where(
            Run.id == run_id, Run.owner == owner, Run.status.in_(ACTIVE))
            .values(owner=None, heartbeat_at=utcnow(), status=_given_back_status())
            .returning(Run.flow_id)).first()
        if released is None:
            return False
        defer_in(session, run_id, released.flow_id)
        return True


def _given_back_status() -> ColumnElement[str]:
    """The status a run given back gets, from the status it has when the write happens."""
    return case({status.value: given_back(status).value for status in ACTIVE},
                value=Run.status, else_=Run.status)


async def take_over_orphans(handover: Handover, busy: set[str]) -> list[str]:
    """Put every orphaned run back in the queue, and end a dead worker's jobs of runs that
    ended (see the module); returns the runs put back."""
    await end_stalled_jobs(handover)
    orphans = await asyncio.to_thread(orphaned_runs, handover.db, handover.lease_seconds,
                                      busy=busy)
    if not orphans:
        return []
    jobs = await active_run_jobs(handover.app)
    taken = []
    for orphan in orphans:
        job = jobs.get(orphan.run_id)
        if await _left_alone(handover, orphan, job):
            continue
        if await _requeue(handover, orphan, job):
            taken.append(orphan.run_id)
    return taken


async def end_stalled_jobs(handover: Handover) -> list[int]:
    """Mark failed the jobs a dead worker was executing for runs that have ended (their flow's
    lock is then free); returns their ids."""
    rows = await handover.app.connector.execute_query_all_async(
        STALLED_JOBS_OF_ENDED_RUNS, task_name=EXECUTE_RUN,
        active=[str(status) for status in ACTIVE], silence=2.0 * handover.lease_seconds)
    for row in rows:
        log.warning("ending job %s: its worker is gone and its run had ended (the flow's "
                    "lock it held is free)", row["id"])
        await _end_dead_job(handover.app, row["id"])
    return [row["id"] for row in rows]


async def _left_alone(handover: Handover, orphan: Orphan, job: RunJob | None) -> bool:
    if job is None:
        return False
    if job.status == "todo":
        return True
    if orphan.owner is not None:  # started, and its owner is gone: its job is dead
        return False
    row = await handover.app.connector.execute_query_one_async(WORKER_SILENCE,
                                                              job_id=job.job_id)
    silent = row["silent"] if row else None
    return silent is not None and silent <= 2 * handover.lease_seconds


async def _requeue(handover: Handover, orphan: Orphan, job: RunJob | None) -> bool:
    if not await asyncio.to_thread(take_over, handover.db, orphan):
        return False  # claimed by another worker first, or its owner came back
    await asyncio.to_thread(release, handover.db, orphan.run_id, owner_name())
    log.warning("taking over run %s from %s (%s); it resumes from its checkpoint on the next "
                "free worker", orphan.run_id, orphan.owner or "nobody", orphan.why)
    if job is not None:  # the dead worker's job: ended, so its flow lock is free
        await _end_dead_job(handover.app, job.job_id)
    return True


async def give_back(handover: Handover, run_ids: set[str]) -> list[str]:
    """Give back each run this worker executes (``release``); returns those given back."""
    given = []
    for run_id in run_ids:
        if not await asyncio.to_thread(release, handover.db, run_id, owner_name()):
            continue  # it ended, or was taken over, meanwhile
        given.append(run_id)
        log.warning("run %s given back: this worker stops; the next worker resumes it from "
                    "its checkpoint", run_id)
    return given


async def _end_dead_job(app: App, job_id: int) -> None:
    """Mark a dead worker's job failed, so the flow's lock it holds is free."""
    try:
        await app.job_manager.finish_job_by_id_async(job_id, status=Status.FAILED,
                                                     delete_job=False)
    except Exception:  # not ``doing`` any more: nothing holds the lock
        log.info("job %s had ended already", job_id, exc_info=True)
