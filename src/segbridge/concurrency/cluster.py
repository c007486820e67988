"""The cluster-wide governor: every process on every machine shares a connection's limit and its
429 back-off through PostgreSQL.

A pool's slots are rows of ``governor_slots`` (pool, slot number below the level, holder,
expires_at). A request takes a free slot -- or one whose holder stopped renewing it -- with one
statement (``SELECT ... FOR UPDATE SKIP LOCKED`` inside an ``UPDATE``), and gives it back with
another: at most two round trips per request, none while it is in flight. A process renews
the expiry of every slot it holds once a second (``HEARTBEAT_SECONDS``, from a thread of its
own, so a busy event loop does not lose slots); a slot of a process that died (SIGKILL, machine
gone) expires ``cluster_store.SLOT_TTL_SECONDS`` after its last renewal at the latest, and the
next request that looks takes it. Bound: a dead process's slots are free again within
``SLOT_TTL_SECONDS`` (5 s) plus one poll (``MAX_POLL_SECONDS``) of a waiting process.

``governor_pools`` holds one row per pool: its level, the limit of the moment (dropped to 1 by
a 429 anywhere, doubled after successes) and the pause (``paused_until``: Retry-After, else a
doubling wait). The take statement only hands out slots below the limit of the moment and not
during a pause, so every process honours a 429 seen by any of them; each answer also brings
the pool's state back, and the heartbeat refreshes it, so the process's local queue follows.

In front of the database sits the ``LocalGovernor``: a process's requests queue in FIFO order
there and only those with a local slot ask the database, so one process never has more
requests asking than the pool allows. A slot given back while another request of the same
process waits goes straight to that request, with no round trip (and when none waits, it
stays for the process's next request: ``LINGER_SECONDS`` if other processes want slots of the
pool, else as long as it may be held), for up to ``HOLD_SECONDS`` after it
was taken from the database and while the process holds no more than its fair share (the
limit over the processes that want slots, ``governor_wants``); then it goes back to the
database, where the other processes' requests find it. A busy process makes about two round
trips per slot and second, not two per request.

Rate limits (requests/s, events/s per pool, ``rates.py``) are token buckets in
``governor_buckets``: ``take_tokens`` reserves a request and its events in one statement (the
bucket may go into debt) and waits until the debt is paid, so all processes share one budget.

Times are the database's (``now()``), so the machines' clocks need not agree; only pauses are
waited on the governor's ``Clock``.

All database work runs on one thread per governor with one connection of its own
(``cluster_store.SlotStore``, which holds the SQL): the methods the ``Governor`` protocol
makes synchronous (``release``, ``rate_limited``, ``succeeded``) hand their write to that
thread and return at once; its queue is FIFO, so a slot given back is free before the same
process asks for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg

from segbridge.concurrency.cluster_store import Shared, SlotStore, Taken, new_holder_id
from segbridge.concurrency.governor import (
    FIRST_PAUSE_SECONDS,
    SUCCESSES_TO_CLIMB,
    LocalGovernor,
)
from segbridge.concurrency.rates import RateLimit
from segbridge.core.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)
T = TypeVar("T")

HEARTBEAT_SECONDS = 1.0
FIRST_POLL_SECONDS = 0.005
MAX_POLL_SECONDS = 0.05
HOLD_SECONDS = 1.0  # the longest a process hands a slot from request to request
LINGER_SECONDS = 0.05  # how long a slot nobody waits for stays, when others want slots
MAX_RETRY_SECONDS = 1.0  # between attempts while the database is out of reach

class ClusterGovernor(LocalGovernor):
    """``LocalGovernor`` plus one slot row per request, shared by every process that uses the
    same PostgreSQL database, and the 429 back-off shared the same way."""

    def __init__(self, database_url: str, clock: Clock = SYSTEM_CLOCK,
                 holder: str | None = None) -> None:
        super().__init__(clock)
        self.holder = holder or new_holder_id()
        self._store = SlotStore(database_url, self.holder)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="governor")
        self._held: dict[str, list[int]] = {}  # the slots of the requests in flight
        self._spares: dict[str, deque[int]] = {}  # given back, for the next waiters in order
        self._taken_at: dict[tuple[str, int], float] = {}
        self._asking: dict[str, int] = {}  # requests asking the database for a slot now
        self._shared: dict[str, Shared] = {}
        self._successes: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._names: set[str] = set()  # the pools configured (read by the heartbeat thread)
        self._names_lock = threading.Lock()
        self._closed = False

    # -- the Governor protocol -----------------------------------------------------------
    def configure(self, pool: str, limit: int) -> None:
        super().configure(pool, limit)
        shared = self._worker.submit(self._store.configure, pool, limit).result()
        self._shared[pool] = shared
        self._follow(pool, shared, hand_over=False)  # (maybe not on the event loop)
        with self._names_lock:
            self._names.add(pool)
        self._start_heartbeat()

    async def acquire(self, pool: str) -> None:
        await super().acquire(pool)  # this process's FIFO queue first
        spares = self._spares.get(pool)
        if spares:  # handed over by this process's last release: no round trip
            self._held.setdefault(pool, []).append(spares.popleft())
            return
        try:
            slot = await self._take_slot(pool)
        except BaseException:
            self._give_back(pool)
            raise
        self._taken_at[pool, slot] = self._clock.monotonic()
        self._held.setdefault(pool, []).append(slot)

    def release(self, pool: str) -> None:
        held = self._held.get(pool)
        if held:
            slot = held.pop()
            if self._keep_for_next(pool, slot):
                waiting = self._has_waiters(pool)
                self._spares.setdefault(pool, deque()).append(slot)
                self._give_back(pool)  # a waiter runs first and takes the spare, ...
                loop = asyncio.get_running_loop()
                if waiting:  # ... else it goes back (the waiter was canceled meanwhile)
                    loop.call_soon(self._return_spare, pool, slot)
                else:  # the next request of this process, if it comes soon, takes it
                    loop.call_later(self._linger(pool, slot), self._return_spare, pool, slot)
                return
            self._return_slot(pool, slot)
        self._give_back(pool)

    def rate_limited(self, pool: str, retry_after: float | None) -> float:
        wait = super().rate_limited(pool, retry_after)  # at once here; the others follow
        self._successes[pool] = 0
        if not self._closed:
            self._in_background(self._store.rate_limited, pool, retry_after)
        return wait

    def succeeded(self, pool: str) -> None:
        """Count successes here; every ``SUCCESSES_TO_CLIMB`` of them at the limit of the
        moment, ask the database to double it (one write, lost if the limit changed)."""
        state = self._pools[pool]
        state.pause = FIRST_PAUSE_SECONDS
        shared = self._shared.get(pool)
        if shared is None or (shared.current >= state.limit
                              and shared.pause_seconds <= FIRST_PAUSE_SECONDS):
            return
        count = self._successes.get(pool, 0) + 1
        self._successes[pool] = 0 if count >= SUCCESSES_TO_CLIMB else count
        if count >= SUCCESSES_TO_CLIMB and not self._closed:
            self._in_background(self._store.climb, pool, shared.current,
                                then=lambda climbed: self._climbed(pool, climbed))

    def configure_rate(self, pool: str, limit: RateLimit) -> None:
        """The pool's rate limit, for every process (the last to configure sets it)."""
        super().configure_rate(pool, limit)  # (this process then knows whether to ask)
        self._worker.submit(self._store.configure_rate, pool, limit).result()

    async def take_tokens(self, pool: str, requests: int = 1, events: int = 0) -> float:
        """One statement reserves from the pool's shared buckets; then the wait, if any."""
        if not self._rates.limited(pool):
            return 0.0
        try:
            wait = await asyncio.wrap_future(
                self._worker.submit(self._store.take_tokens, pool, requests, events))
        except psycopg.Error:  # out of reach: this process's own budget, for now
            log.warning("governor: rate limit of %s kept in this process for now", pool,
                        exc_info=True)
            wait = self._rates.reserve(pool, requests, events)
        if wait > 0:
            await self._clock.sleep(wait)
        return wait

    def close(self) -> None:
        """Give back every slot still held, stop the heartbeat, close the connection."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=HEARTBEAT_SECONDS * 5)
        try:
            self._worker.submit(self._store.release_all).result(timeout=10)
        except Exception:  # the slots expire by themselves
            log.warning("governor: could not give back the slots at close", exc_info=True)
        self._worker.submit(self._store.close).result(timeout=10)
        self._worker.shutdown(wait=True)

    def held_slots(self, pool: str) -> list[int]:
        """The slot numbers this process holds now (for tests and metrics)."""
        return list(self._held.get(pool, []))

    # -- handing a slot over inside the process ----------------------------------------------
    def _keep_for_next(self, pool: str, slot: int) -> bool:
        """Whether a slot given back stays with this process for its next request (the one
        waiting, else one within ``LINGER_SECONDS``): the pool has room for it now, the slot
        was taken from the database less than ``HOLD_SECONDS`` ago, and this process holds no
        more than its fair share (so every slot goes back to the database that often, and
        other processes get theirs)."""
        state = self._pools[pool]
        now = self._clock.monotonic()
        shared = self._shared.get(pool)
        share = state.current if shared is None or shared.share is None else shared.share
        holding = len(self._held.get(pool, ())) + len(self._spares.get(pool, ())) + 1
        return (not self._closed and state.in_flight - 1 < state.current
                and now >= state.paused_until and holding <= share
                and now - self._taken_at.get((pool, slot), -HOLD_SECONDS) < HOLD_SECONDS)

    def _linger(self, pool: str, slot: int) -> float:
        """How long a slot nobody waits for stays with the process: while no other process
        wants slots of the pool, until its ``HOLD_SECONDS`` end; else ``LINGER_SECONDS``."""
        shared, state = self._shared.get(pool), self._pools[pool]
        if shared is None or shared.share is None or shared.share < state.current:
            return LINGER_SECONDS
        held_for = self._clock.monotonic() - self._taken_at.get((pool, slot), 0.0)
        return max(LINGER_SECONDS, HOLD_SECONDS - held_for)

    def _has_waiters(self, pool: str) -> bool:
        return any(not waiter.done() for waiter in self._pools[pool].waiters)

    def _return_spare(self, pool: str, slot: int) -> None:
        """A spare no request took goes back to the database."""
        spares = self._spares.get(pool)
        if spares is not None and slot in spares:
            spares.remove(slot)
            self._return_slot(pool, slot)

    def _return_slot(self, pool: str, slot: int) -> None:
        self._taken_at.pop((pool, slot), None)
        if not self._closed:
            self._worker.submit(self._store.release, pool, slot)

    # -- taking a slot from the database ---------------------------------------------------
    async def _take_slot(self, pool: str) -> int:
        self._loop = asyncio.get_running_loop()
        self._asking[pool] = self._asking.get(pool, 0) + 1
        try:
            return await self._ask_until_taken(pool)
        finally:
            self._asking[pool] -= 1

    async def _ask_until_taken(self, pool: str) -> int:
        poll = FIRST_POLL_SECONDS
        while True:
            try:
                taken = await self._take_once(pool)
            except psycopg.Error:
                log.warning("governor: the database is out of reach; retrying", exc_info=True)
                await asyncio.sleep(MAX_RETRY_SECONDS)
                continue
            if taken.shared is not None:
                self._shared[pool] = taken.shared
                self._follow(pool, taken.shared)
            if taken.slot is not None:
                return taken.slot
            if taken.shared is not None and taken.shared.pause_left > 0:
                await self._clock.sleep(taken.shared.pause_left)  # a 429's pause, shared
                poll = FIRST_POLL_SECONDS
                continue
            # every slot is held elsewhere: a real wait for another process, with jitter
            await asyncio.sleep(poll * (0.5 + random.random()))
            poll = min(MAX_POLL_SECONDS, poll * 2)

    async def _take_once(self, pool: str) -> Taken:
        future = self._worker.submit(self._store.take, pool)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:  # the statement may still take a slot: give it back
            future.add_done_callback(lambda done: self._give_back_taken(pool, done))
            raise

    def _give_back_taken(self, pool: str, done: Future[Taken]) -> None:
        if done.cancelled() or done.exception() is not None or self._closed:
            return
        slot = done.result().slot
        if slot is not None:
            self._worker.submit(self._store.release, pool, slot)

    # -- following the shared state ----------------------------------------------------------
    def _follow(self, pool: str, shared: Shared, hand_over: bool = True) -> None:
        """This process's queue follows the pool's limit and pause of the moment."""
        state = self._pools.get(pool)
        if state is None:
            return
        if state.current != min(state.limit, shared.current):
            self._successes[pool] = 0
        state.current = max(1, min(state.limit, shared.current))
        if shared.pause_left > 0:
            state.paused_until = max(state.paused_until,
                                     self._clock.monotonic() + shared.pause_left)
        if hand_over:
            self._hand_over(pool, state)

    def _climbed(self, pool: str, shared: Shared | None) -> None:
        if shared is not None:
            self._shared[pool] = shared
            self._follow(pool, shared)

    def _follow_all(self, states: dict[str, Shared]) -> None:
        for pool, shared in states.items():
            self._shared[pool] = shared
            self._follow(pool, shared)

    def _in_background(self, work: Callable[..., T], *args: Any,
                       then: Callable[[T], None] | None = None) -> None:
        """``work`` on the store's thread; ``then`` with its result on the event loop."""
        future = self._worker.submit(work, *args)
        loop = self._loop

        def done(finished: Future[T]) -> None:
            if finished.exception() is not None:
                log.warning("governor: %s failed", work.__name__, exc_info=finished.exception())
            elif then is not None and loop is not None:
                _call_soon(loop, then, finished.result())

        future.add_done_callback(done)

    # -- the heartbeat -------------------------------------------------------------------------
    def _wants_more(self, pool: str) -> bool:
        """Requests of this process wait for a slot of the pool (read from the heartbeat's
        thread: a momentary view is enough)."""
        state = self._pools.get(pool)
        return bool(self._asking.get(pool)) or (state is not None and bool(state.waiters))

    def _start_heartbeat(self) -> None:
        if self._heartbeat is None and not self._closed:
            self._heartbeat = threading.Thread(target=self._beat, name="governor-heartbeat",
                                               daemon=True)
            self._heartbeat.start()

    def _beat(self) -> None:
        """Renew this process's slots every ``HEARTBEAT_SECONDS``; follow the pools' states."""
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with self._names_lock:
                pools = sorted(self._names)
            wanting = [pool for pool in pools if self._wants_more(pool)]
            try:
                states = self._worker.submit(self._store.renew, pools, wanting).result()
            except Exception:
                if self._closed:
                    return
                log.warning("governor: could not renew the slots held", exc_info=True)
                continue
            if self._loop is not None:
                _call_soon(self._loop, self._follow_all, states)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[T], None], value: T) -> None:
    """``callback(value)`` on ``loop``, unless the loop is gone."""
    with contextlib.suppress(RuntimeError):  # the loop was closed: nobody waits there now
        loop.call_soon_threadsafe(callback, value)
