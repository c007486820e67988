"""Executing runs: in the server, on one event loop thread shared by all runs (so every run of
the process draws from the same connection pools); in the CLI, in the foreground.

Runs left behind by a killed process are resumed at start (``resume_orphans``). The same
``execute_run`` is what a Celery worker would call for scale-out.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from pathlib import Path

import httpx

from segbridge.concurrency.governor import Governor
from segbridge.concurrency.host import HostGovernor
from segbridge.core.settings import Settings
from segbridge.core.vault import Vault
from segbridge.flows.counts import Tally
from segbridge.flows.delivery import RetryPolicy
from segbridge.flows.engine import Engine, OnProgress, RunResult
from segbridge.flows.lanes import LanePolicy
from segbridge.flows.plan import PlanContext, build_plan
from segbridge.flows.retries import after_run
from segbridge.flows.runs import RunStore, orphaned_runs
from segbridge.storage.db import Database

log = logging.getLogger(__name__)
HTTP_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100)


def slots_folder(home: Path) -> Path:
    """Where the processes of this home share connection limits (``HostGovernor``)."""
    return home / "slots"


def new_http(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=timeout, limits=HTTP_LIMITS, trust_env=False,
                             follow_redirects=False)


async def execute_run(
    db: Database, vault: Vault, settings: Settings, governor: Governor,
    http: httpx.AsyncClient,
    run_id: str, *, policy: RetryPolicy | None = None,
    on_progress: OnProgress | None = None, lanes: LanePolicy | None = None,
) -> RunResult:
    """Run (or resume) one run to its end; returns its final status and counts."""
    store = RunStore(db, run_id)
    run = await asyncio.to_thread(store.start)
    try:
        ctx = PlanContext(db, vault, governor, http, settings, policy or RetryPolicy(),
                          lanes or LanePolicy())
        plan = await asyncio.to_thread(build_plan, ctx, run, store)
    except Exception as exc:
        message = getattr(exc, "message", None) or str(exc)
        await asyncio.to_thread(store.finish, "failed", f"the run could not start: {message}",
                                None)
        return RunResult("failed", message, Tally())
    result = await Engine(plan, store, on_progress).execute()
    cursor = plan.cursor_after() if plan.cursor_after and result.status != "failed" else None
    await asyncio.to_thread(store.finish, result.status, result.message, cursor)
    await asyncio.to_thread(after_run, db, run_id)
    return result


class RunExecutor:
    """The server's executor: one event loop thread, one governor, one HTTP client."""

    def __init__(self, db: Database, vault: Vault, settings: Settings, *,
                 timeout: float = 30.0,
                 policy: RetryPolicy | None = None, lanes: LanePolicy | None = None) -> None:
        self.db = db
        self.vault = vault
        self.settings = settings
        self.policy = policy
        self.lanes = lanes
        self.governor = HostGovernor(slots_folder(settings.home))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="runs", daemon=True)
        self._thread.start()
        self._http = asyncio.run_coroutine_threadsafe(
            self._make_http(timeout), self._loop).result()
        self._active: dict[str, Future[RunResult]] = {}

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
        result = await execute_run(self.db, self.vault, self.settings, self.governor, self._http,
                                   run_id, policy=self.policy, lanes=self.lanes)
        for follow_up in await asyncio.to_thread(self._queued_follow_ups, run_id):
            self.submit(follow_up)
        return result

    def _queued_follow_ups(self, run_id: str) -> list[str]:
        from segbridge.flows.retries import queued_retry_runs

        return queued_retry_runs(self.db, run_id)

    def resume_orphans(self) -> list[str]:
        """Resume every run a dead process left queued, running or paused."""
        run_ids = orphaned_runs(self.db)
        for run_id in run_ids:
            log.info("resuming run %s", run_id)
            self.submit(run_id)
        return run_ids

    def shutdown(self) -> None:
        async def close() -> None:
            await self._http.aclose()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self.governor.close()


def run_in_foreground(
    db: Database, vault: Vault, settings: Settings, run_id: str, *, timeout: float = 30.0,
    policy: RetryPolicy | None = None, on_progress: OnProgress | None = None,
    lanes: LanePolicy | None = None,
) -> RunResult:
    """The CLI's way: execute a run (and the automatic retry that may follow) here and now."""
    from segbridge.flows.retries import queued_retry_runs

    async def main() -> RunResult:
        governor = HostGovernor(slots_folder(settings.home))
        try:
            async with new_http(timeout) as http:
                result = await execute_run(db, vault, settings, governor, http, run_id,
                                           policy=policy, on_progress=on_progress,
                                           lanes=lanes)
                for follow_up in queued_retry_runs(db, run_id):
                    await execute_run(db, vault, settings, governor, http, follow_up,
                                      policy=policy, lanes=lanes)
                return result
        finally:
            governor.close()

    return asyncio.run(main())
