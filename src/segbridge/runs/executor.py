"""Executing runs: the one entry point, ``execute``, that the server, the CLI and a future
worker all call with a run id and what executing needs (a ``PlanContext``: database, vault,
settings, governor, HTTP client, retry policy, lanes). It executes the run, then the automatic
retry runs that follow it, one after the other, each with its lease kept.

The server calls it on one event loop thread shared by all runs (``RunExecutor``: every run of
the process draws from the same connection pools); the CLI in the foreground (``execute_here``,
which makes its own governor and HTTP client). A Celery worker for scale-out would call the
same ``execute``.

Whoever executes a run holds its lease (``runs.store``): ``execute`` renews it every
``run_lease_seconds`` and stops, committing nothing more, once another process took the run
over. A server takes over the runs nobody executes any more (``take_over_orphans``): at start,
and every half lease while it runs (``workers``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, MutableSet
from concurrent.futures import Future
from typing import Any, Protocol

import httpx

from segbridge.alerts.hooks import notify_run_finished
from segbridge.apps.base import Registry
from segbridge.apps.registry import default_registry
from segbridge.concurrency import governor_for
from segbridge.core.clock import SYSTEM_CLOCK, Clock
from segbridge.core.errors import Conflict
from segbridge.core.settings import Settings
from segbridge.core.vault import Vault
from segbridge.runs.counts import Tally
from segbridge.runs.engine import TAKEN_OVER_RESULT, Engine, OnProgress, RunResult
from segbridge.runs.lanes import LanePolicy, lane_policy
from segbridge.runs.lifecycle import RunStatus
from segbridge.runs.plan import PlanContext, build_plan
from segbridge.runs.retries import after_run, queued_retry_runs
from segbridge.runs.store import LeaseLost, RunStore, orphaned_runs, take_over
from segbridge.sinks.contracts import RetryPolicy
from segbridge.storage.db import Database

log = logging.getLogger(__name__)
HTTP_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100)


def new_http(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=timeout, limits=HTTP_LIMITS, trust_env=False,
                             follow_redirects=False)


async def execute(run_id: str, ctx: PlanContext, *, on_progress: OnProgress | None = None,
                  executing: MutableSet[str] | None = None) -> RunResult:
    """Execute (or resume) a run to its end, then each automatic retry run that follows it
    (a retry's own retry too), one after the other; returns the first run's result.

    Refused (``Conflict``) while another live process executes the run. ``on_progress`` is
    told about the first run only. ``executing`` (the server's): holds each run while this
    call executes it, so the take-over loop knows the run is not an orphan."""
    result = await _execute_one(run_id, ctx, on_progress, executing)
    follow_ups = await asyncio.to_thread(queued_retry_runs, ctx.db, run_id)
    while follow_ups:
        follow_up = follow_ups.pop(0)
        try:
            await _execute_one(follow_up, ctx, None, executing)
        except Conflict as busy:  # another live process executes it: leave it to that one
            log.warning("retry run %s not started here: %s", follow_up, busy.message)
            continue
        follow_ups += await asyncio.to_thread(queued_retry_runs, ctx.db, follow_up)
    return result


class RuntimeParts(Protocol):
    """What ``execute_here`` needs of the runtime (``segbridge.runtime.Runtime`` has it)."""

    @property
    def db(self) -> Database: ...

    @property
    def vault(self) -> Vault: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def registry(self) -> Registry: ...


def execute_here(runtime: RuntimeParts, run_id: str,
                 on_progress: OnProgress | None = None) -> RunResult:
    """The CLI's way: ``execute`` here and now, with this process's own governor and HTTP
    client, the configured lanes and the default retry policy."""
    settings = runtime.settings
    return run_in_foreground(runtime.db, runtime.vault, settings, run_id,
                             timeout=settings.http_timeout_seconds, on_progress=on_progress,
                             lanes=lane_policy(settings), registry=runtime.registry)


def run_in_foreground(
    db: Database, vault: Vault, settings: Settings, run_id: str, *, timeout: float = 30.0,
    policy: RetryPolicy | None = None, on_progress: OnProgress | None = None,
    lanes: LanePolicy | None = None, registry: Registry | None = None,
) -> RunResult:
    """``execute`` on a new event loop, with a governor and an HTTP client of its own (closed
    after); the tests and the benchmark choose the timeout, policy and lanes. ``registry``:
    the runtime's applications (default: the built-in ones)."""

    async def main() -> RunResult:
        governor = governor_for(settings, db)
        try:
            async with new_http(timeout) as http:
                ctx = PlanContext(db=db, vault=vault, governor=governor, http=http,
                                  settings=settings, policy=policy or RetryPolicy(),
                                  lanes=lanes or LanePolicy(),
                                  registry=registry or default_registry())
                return await execute(run_id, ctx, on_progress=on_progress)
        finally:
            governor.close()

    return asyncio.run(main())


async def _execute_one(run_id: str, ctx: PlanContext, on_progress: OnProgress | None,
                       executing: MutableSet[str] | None) -> RunResult:
    if executing is None:
        return await _run_to_its_end(run_id, ctx, on_progress)
    executing.add(run_id)
    try:
        return await _run_to_its_end(run_id, ctx, on_progress)
    finally:
        executing.discard(run_id)


async def _run_to_its_end(run_id: str, ctx: PlanContext,
                          on_progress: OnProgress | None) -> RunResult:
    """Run (or resume) one run to its end; returns its final status and counts."""
    store = RunStore(ctx.db, run_id, ctx.settings.run_lease_seconds)
    run = await asyncio.to_thread(store.start)
    if run.status == RunStatus.CANCELING:  # canceled while nobody executed it
        return await _finish(store, RunResult(RunStatus.CANCELED, "canceled by a user", Tally()))
    try:
        plan = await asyncio.to_thread(build_plan, ctx, run, store)
    except Exception as exc:
        message = getattr(exc, "message", None) or str(exc)
        failed = await _finish(store, RunResult(
            RunStatus.FAILED, f"the run could not start: {message}", Tally()))
        if failed.status != TAKEN_OVER_RESULT:
            await asyncio.to_thread(notify_run_finished, ctx.db, ctx.vault, ctx.settings,
                                    run_id)
        return failed
    engine = Engine(plan, store, on_progress)
    lease = asyncio.create_task(
        keep_lease(store, ctx.settings.run_lease_seconds, engine.lose_lease))
    try:
        result = await engine.execute()
    finally:
        lease.cancel()
    cursor = None
    if plan.cursor_after is not None and result.status != RunStatus.FAILED:
        cursor = plan.cursor_after()
    result = await _finish(store, result, cursor)
    if result.status != TAKEN_OVER_RESULT:
        await asyncio.to_thread(after_run, ctx.db, run_id)
        await asyncio.to_thread(notify_run_finished, ctx.db, ctx.vault, ctx.settings,
                                run_id)  # never raises: a failed alert never fails a run
    return result


async def keep_lease(store: RunStore, seconds: float, lost: Callable[[str], None]) -> None:
    """Renew the run's lease every ``seconds``; tell ``lost`` once another process owns it."""
    while True:
        await asyncio.sleep(seconds)
        try:
            held = await asyncio.to_thread(store.renew)
        except Exception:  # the database is out of reach for now: the next renewal may work
            log.warning("run %s: could not renew its lease", store.run_id, exc_info=True)
            continue
        if not held:
            lost(f"run {store.run_id} was taken over by another process")
            return


async def _finish(store: RunStore, result: RunResult,
                  cursor: dict[str, Any] | None = None) -> RunResult:
    """Record the run's end, unless another process took it over meanwhile."""
    if result.status == TAKEN_OVER_RESULT:
        return result
    try:
        await asyncio.to_thread(store.finish, result.status, result.message, cursor)
    except LeaseLost as lost:
        log.warning("run %s ended here as %s, but %s", store.run_id, result.status, lost)
        return RunResult(TAKEN_OVER_RESULT, str(lost), result.counts)
    return result


class RunExecutor:
    """The server's executor: one event loop thread, one governor, one HTTP client."""

    def __init__(self, db: Database, vault: Vault, settings: Settings, *,
                 timeout: float = 30.0,
                 policy: RetryPolicy | None = None, lanes: LanePolicy | None = None,
                 registry: Registry | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.db = db
        self.vault = vault
        self.settings = settings
        self.policy = policy
        self.lanes = lanes
        self.registry = registry or default_registry()  # the runtime's applications
        self.clock = clock
        self.governor = governor_for(settings, db, clock)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="runs", daemon=True)
        self._thread.start()
        self._http = asyncio.run_coroutine_threadsafe(
            self._make_http(timeout), self._loop).result()
        self._active: dict[str, Future[RunResult]] = {}
        self._executing: set[str] = set()  # (by ``execute``: a run and then its retries)

    @staticmethod
    async def _make_http(timeout: float) -> httpx.AsyncClient:
        return new_http(timeout)

    def submit(self, run_id: str) -> Future[RunResult]:
        if run_id in self._active and not self._active[run_id].done():
            return self._active[run_id]
        future = asyncio.run_coroutine_threadsafe(self._run(run_id), self._loop)
        self._active[run_id] = future
        return future

    async def _run(self, run_id: str) -> RunResult:
        ctx = PlanContext(db=self.db, vault=self.vault, governor=self.governor, http=self._http,
                          settings=self.settings, policy=self.policy or RetryPolicy(),
                          lanes=self.lanes or LanePolicy(), registry=self.registry,
                          clock=self.clock)
        try:
            return await execute(run_id, ctx, executing=self._executing)
        except Conflict as busy:  # another live process executes it: leave it to that one
            log.warning("run %s not started here: %s", run_id, busy.message)
            raise

    def take_over_orphans(self) -> list[str]:
        """Take over (claim atomically, then resume from its checkpoint) every queued,
        running or paused run nobody executes any more; returns their ids."""
        orphans = orphaned_runs(self.db, self.settings.run_lease_seconds, busy=self._busy())
        taken = []
        for orphan in orphans:
            if orphan.run_id in self._busy() or not take_over(self.db, orphan):
                continue  # started here meanwhile, or another server claimed it first
            log.warning("taking over run %s from %s (%s); it resumes from its checkpoint",
                        orphan.run_id, orphan.owner or "nobody", orphan.why)
            self.submit(orphan.run_id)
            taken.append(orphan.run_id)
        return taken

    resume_orphans = take_over_orphans  # (at start: what a killed process left behind)

    def _busy(self) -> set[str]:
        """The runs this process executes now, or is about to."""
        submitted = {run_id for run_id, future in list(self._active.items())
                     if not future.done()}
        return submitted | self._executing.copy()

    def shutdown(self) -> None:
        async def close() -> None:
            await self._http.aclose()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():  # a loop still running cannot be closed
            self._loop.close()
        self.governor.close()

