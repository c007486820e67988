"""Background work of a server: the run executor, the schedule, the re-test of offline
connections and the take-over of runs nobody executes any more. Started by ``segbridge serve``
(and by the tests' servers).

With PostgreSQL, runs go through the job queue (``segbridge.queueing``): the schedule and the
take-over are the queue's periodic ticks, and the server executes runs only as one more queue
worker, in a thread of its own (``settings.server_executes_runs``, default on, so a one-machine
PostgreSQL install needs no ``segbridge worker``); off, it only enqueues.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from segbridge.core.clock import SYSTEM_CLOCK, Clock
from segbridge.flows.scheduler import start_due_runs
from segbridge.runs.executor import RunExecutor
from segbridge.runs.lanes import LanePolicy, lane_policy
from segbridge.runtime import Runtime
from segbridge.sinks.contracts import RetryPolicy

log = logging.getLogger(__name__)
SCHEDULE_TICK_SECONDS = 15.0


class Every:
    """Calls a function every ``interval`` seconds in a daemon thread."""

    def __init__(self, name: str, interval: float, work: Callable[[], object]) -> None:
        self._interval = interval
        self._work = work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._work()
            except Exception:
                log.exception("background work %s failed", self._thread.name)


class Workers:
    def __init__(self, runtime: Runtime, policy: RetryPolicy | None = None,
                 http_timeout: float | None = None, lanes: LanePolicy | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.runtime = runtime
        self._stopped = False
        self.queue_worker: QueueWorkerThread | None = None
        if runtime.settings.resolved_database_url.startswith("postgresql"):
            self._loops = [Every("retest-offline", runtime.settings.retest_interval_seconds,
                                 runtime.connections.retest_offline),
                           # several servers may run it: a status change notifies once
                           Every("alerts", SCHEDULE_TICK_SECONDS,
                                 runtime.alerts.check_connections)]
            if runtime.settings.server_executes_runs:
                self.queue_worker = QueueWorkerThread(runtime, policy, http_timeout, lanes,
                                                      clock)
            return
        self.executor = RunExecutor(runtime.db, runtime.vault, runtime.settings,
                                    timeout=http_timeout or runtime.settings.http_timeout_seconds,
                                    policy=policy, lanes=lanes or lane_policy(runtime.settings),
                                    registry=runtime.registry, clock=clock)
        runtime.run_queue.attach(self.submit)
        self._loops = [
            Every("retest-offline", runtime.settings.retest_interval_seconds,
                  runtime.connections.retest_offline),
            Every("schedule", SCHEDULE_TICK_SECONDS, lambda: start_due_runs(runtime.flows)),
            Every("alerts", SCHEDULE_TICK_SECONDS, runtime.alerts.check_connections),
            # runs whose process died (a killed CLI run, a crashed server): taken over within
            # half a lease on this host, within 2.5 leases from another one
            Every("take-over", runtime.settings.run_lease_seconds / 2,
                  self.executor.take_over_orphans),
        ]

    def submit(self, run_id: str) -> None:
        self.executor.submit(run_id)

    def start(self) -> list[str]:
        """Start the loops; resume the runs a killed process left behind; return their ids."""
        for loop in self._loops:
            loop.start()
        if self.queue_worker is not None:
            self.queue_worker.start()  # (its take-over tick resumes what was left behind)
            return []
        if self.runtime.settings.resolved_database_url.startswith("postgresql"):
            return []
        return self.executor.resume_orphans()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for loop in self._loops:
            loop.stop()
        if self.queue_worker is not None:
            self.queue_worker.stop()
        if hasattr(self, "executor"):
            self.runtime.run_queue.detach(self.submit)
            self.executor.shutdown()


class QueueWorkerThread:
    """A queue worker (``segbridge.queueing.worker``) on an event loop of its own thread."""

    def __init__(self, runtime: Runtime, policy: RetryPolicy | None,
                 http_timeout: float | None, lanes: LanePolicy | None, clock: Clock) -> None:
        from segbridge.queueing.worker import QueueWorker, WorkerOptions, quiet_queue_logs

        quiet_queue_logs()
        options = WorkerOptions(concurrency=runtime.settings.worker_concurrency, policy=policy,
                                lanes=lanes, clock=clock, http_timeout=http_timeout)
        self.worker = QueueWorker(runtime, options)
        self._thread = threading.Thread(target=self._run, name="queue-worker", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self.worker.run(signals=False))
        except Exception:
            log.exception("the server's queue worker stopped")

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Give back the runs it executes and wait for it to end."""
        self.worker.shutdown_threadsafe()
        self._thread.join(timeout=timeout)
