"""The queue worker: executes runs from the job queue, and the cluster's periodic ticks.

One asyncio loop per process holds two procrastinate workers on one App: one for the run
queue(s) (``concurrency`` runs at once), one small one for the periodic queue (the schedule
every 15 s, the take-over every few seconds), so runs filling every slot never delay a
take-over. procrastinate defers each periodic tick once across the cluster (its periodic
defers table), whichever workers are up.

Each run executes with the machinery the server uses (``runs.executor.execute``: the run's
lease renewed, every write conditional on still owning it), with this process's HTTP client
and the install's governor (``concurrency.governor_for``: the cluster governor with
PostgreSQL).

SIGTERM or SIGINT (``shutdown``): the workers stop taking jobs; every run executing here is
given back (``handover.give_back``): ``queued`` again, its job waiting in the queue; the
process ends once the engines have stopped (at their next checkpoint or lease renewal), or after
``grace_seconds`` (procrastinate then cancels what is left; those runs are taken over).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from procrastinate import App
from procrastinate.worker import Worker

from segbridge.concurrency import governor_for
from segbridge.core.clock import SYSTEM_CLOCK, Clock
from segbridge.core.errors import Conflict
from segbridge.flows.scheduler import start_due_runs
from segbridge.queueing.app import (
    EXECUTE_RUN,
    PERIODIC_QUEUE,
    QUEUES,
    SCHEDULE_TICK,
    TAKE_OVER,
    worker_app,
)
from segbridge.queueing.handover import Handover, give_back, take_over_orphans
from segbridge.queueing.jobs import defer_run_async, flow_of
from segbridge.runs.executor import execute, new_http
from segbridge.runs.lanes import LanePolicy, lane_policy
from segbridge.runs.plan import PlanContext
from segbridge.runtime import Runtime
from segbridge.sinks.contracts import RetryPolicy

log = logging.getLogger(__name__)
SCHEDULE_CRON = "* * * * * */15"  # (a sixth field: seconds) as often as a server's schedule
PERIODIC_CONCURRENCY = 2
POLL_SECONDS = 1.0


def quiet_queue_logs() -> None:
    """procrastinate logs every job at INFO, and the periodic ticks come every few seconds:
    keep its warnings, and the run worker's own lines (started, stopping, each run's job)."""
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    logging.getLogger("procrastinate.worker.runs").setLevel(logging.INFO)


def take_over_period(lease_seconds: int) -> int:
    """Seconds between take-over ticks: a quarter lease, 1 to 5 s."""
    return max(1, min(5, lease_seconds // 4))


@dataclass
class WorkerOptions:
    """How a queue worker executes runs (the tests choose fast retries and lanes)."""

    concurrency: int = 4
    queues: Iterable[str] = QUEUES
    policy: RetryPolicy | None = None
    lanes: LanePolicy | None = None
    clock: Clock = SYSTEM_CLOCK
    http_timeout: float | None = None
    periodic: bool = True  # the schedule and take-over ticks (off: runs only)
    grace_seconds: float | None = None  # default: two leases


class QueueWorker:
    def __init__(self, runtime: Runtime, options: WorkerOptions | None = None) -> None:
        self.runtime = runtime
        self.options = options or WorkerOptions(
            concurrency=runtime.settings.worker_concurrency)
        settings = runtime.settings
        self.app: App = worker_app(settings.resolved_database_url,
                                   pool_size=self.options.concurrency + 6)
        self.handover = Handover(runtime.db, self.app, settings.run_lease_seconds)
        self.executing: set[str] = set()
        self.draining = False
        self._ctx: PlanContext | None = None
        self._workers: list[Worker] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._register_tasks()

    # ---- tasks -----------------------------------------------------------------------------

    def _register_tasks(self) -> None:
        self.app.task(name=EXECUTE_RUN, queue=QUEUES[0])(self.execute_run)
        if not self.options.periodic:
            return
        period = take_over_period(self.runtime.settings.run_lease_seconds)
        self.app.periodic(cron=f"* * * * * */{period}", periodic_id="take-over")(
            self.app.task(name=TAKE_OVER, queue=PERIODIC_QUEUE)(self.take_over_tick))
        self.app.periodic(cron=SCHEDULE_CRON, periodic_id="schedule")(
            self.app.task(name=SCHEDULE_TICK, queue=PERIODIC_QUEUE)(self.schedule_tick))

    async def execute_run(self, run_id: str) -> None:
        """A run's job: execute (or resume) the run here, then the retry runs after it."""
        if self.draining or self._ctx is None:  # (fetched while stopping): back to the queue
            flow_id = await asyncio.to_thread(flow_of, self.runtime.db, run_id)
            await defer_run_async(self.app, run_id, flow_id)
            return
        try:
            await execute(run_id, self._ctx, executing=self.executing)
        except Conflict as busy:  # executed by a live process, or over: nothing to do here
            log.info("run %s not executed here: %s", run_id, busy.message)

    async def take_over_tick(self, timestamp: int) -> None:
        await take_over_orphans(self.handover, busy=set(self.executing))

    async def schedule_tick(self, timestamp: int) -> None:
        await asyncio.to_thread(start_due_runs, self.runtime.flows)

    # ---- the process -----------------------------------------------------------------------

    async def run(self, *, signals: bool = True) -> None:
        """Work the queues until ``shutdown``."""
        self._loop = asyncio.get_running_loop()
        if self.draining:
            return
        settings = self.runtime.settings
        governor = governor_for(settings, self.runtime.db, self.options.clock)
        try:
            async with new_http(self.options.http_timeout or settings.http_timeout_seconds) \
                    as http, self.app.open_async():
                self._ctx = PlanContext(
                    db=self.runtime.db, vault=self.runtime.vault, governor=governor, http=http,
                    settings=settings, policy=self.options.policy or RetryPolicy(),
                    lanes=self.options.lanes or lane_policy(settings),
                    registry=self.runtime.registry, clock=self.options.clock)
                if signals:
                    for sig in (signal.SIGTERM, signal.SIGINT):
                        self._loop.add_signal_handler(sig, self.shutdown)
                self._workers = self._make_workers()
                running = [asyncio.create_task(worker.run())  # type: ignore[no-untyped-call]
                           for worker in self._workers]
                await asyncio.sleep(0)  # (each worker has started: a stop now is kept)
                if self.draining:  # asked to stop before it started
                    self._stop_workers()
                await asyncio.gather(*running)
        finally:
            self._ctx = None
            self._loop = None
            governor.close()

    def _make_workers(self) -> list[Worker]:
        grace = self.options.grace_seconds
        if grace is None:
            grace = 2.0 * self.runtime.settings.run_lease_seconds
        common: dict[str, Any] = {"install_signal_handlers": False,
                                  "shutdown_graceful_timeout": grace,
                                  "update_heartbeat_interval": 5.0,
                                  # a job waiting on its flow's lock gets no notification when
                                  # the lock frees: polled (one cheap query a second)
                                  "fetch_job_polling_interval": POLL_SECONDS,
                                  "stalled_worker_timeout": 30.0,
                                  "delete_jobs": "successful"}
        workers = [Worker(self.app, queues=list(self.options.queues), name="runs",
                          concurrency=self.options.concurrency, **common)]
        if self.options.periodic:
            workers.append(Worker(self.app, queues=[PERIODIC_QUEUE], name="periodic",
                                  concurrency=PERIODIC_CONCURRENCY, **common))
        return workers

    def shutdown(self) -> None:
        """Stop taking jobs, give back the runs executing here (on this worker's loop)."""
        if self.draining:
            return
        self.draining = True
        log.warning("stopping: no new jobs; giving back %d run(s)", len(self.executing))
        self._stop_workers()
        task = asyncio.get_running_loop().create_task(
            give_back(self.handover, set(self.executing)))
        task.add_done_callback(_log_failure)

    def _stop_workers(self) -> None:
        for worker in self._workers:
            worker.stop()  # type: ignore[no-untyped-call]

    def shutdown_threadsafe(self) -> None:
        """``shutdown`` from another thread (the server's)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self.draining = True  # not started yet: it will not start
            return
        loop.call_soon_threadsafe(self.shutdown)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("giving runs back failed", exc_info=task.exception())
