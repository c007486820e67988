"""The cluster-wide governor: every process on every machine shares a connection's limit and its
429 back-off through PostgreSQL.

A pool's slots are rows of ``governor_slots`` (pool, slot number below the level, holder,
expires_at). A request takes a free slot -- or one whose holder stopped renewing it -- with one
statement (``SELECT ... FOR UPDATE SKIP LOCKED`` inside an ``UPDATE``), and gives it back with
another: at most two round trips per request, none while it is in flight. A process renews
the expiry of every slot it holds once a second (``HEARTBEAT_SECONDS``, from a thread of its
own, so a busy event loop does not lose slots); a slot of a process that died (SIGKILL, machine
gone) expires ``SLOT_TTL_SECONDS`` after its last renewal at the latest, and the next request
that looks takes it. Bound: a dead process's slots are free again within ``SLOT_TTL_SECONDS``
(5 s) plus one poll (``MAX_POLL_SECONDS``) of a waiting process.

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

All database work runs on one thread per governor with one connection of its own (``_SlotStore``):
the methods the ``Governor`` protocol makes synchronous (``release``, ``rate_limited``,
``succeeded``) hand their write to that thread and return at once; its queue is FIFO, so a
slot given back is free before the same process asks for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from sqlalchemy.engine import make_url

from segbridge.concurrency.governor import (
    FIRST_PAUSE_SECONDS,
    MAX_PAUSE_SECONDS,
    SUCCESSES_TO_CLIMB,
    LocalGovernor,
)
from segbridge.concurrency.rates import RateLimit
from segbridge.core.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)
T = TypeVar("T")

HEARTBEAT_SECONDS = 1.0
SLOT_TTL_SECONDS = 5.0
FIRST_POLL_SECONDS = 0.005
MAX_POLL_SECONDS = 0.05
WANT_TTL_SECONDS = 2.5  # a process counts as wanting slots this long after it last said so
HOLD_SECONDS = 1.0  # the longest a process hands a slot from request to request
LINGER_SECONDS = 0.05  # how long a slot nobody waits for stays, when others want slots
MAX_RETRY_SECONDS = 1.0  # between attempts while the database is out of reach

_CONFIGURE = """
WITH pool AS (
    INSERT INTO governor_pools (pool, level, current_limit, pause_seconds, updated_at)
    VALUES (%(pool)s, %(level)s, %(level)s, %(first_pause)s, now())
    ON CONFLICT (pool) DO UPDATE SET level = EXCLUDED.level,
        current_limit = LEAST(governor_pools.current_limit, EXCLUDED.level), updated_at = now()
    RETURNING current_limit, pause_seconds, paused_until
), slots AS (
    INSERT INTO governor_slots (pool, slot)
    SELECT %(pool)s, n FROM generate_series(0, %(level)s - 1) AS n
    ON CONFLICT DO NOTHING
)
SELECT current_limit, pause_seconds,
       COALESCE(EXTRACT(EPOCH FROM (paused_until - now())), 0)::float8 FROM pool
"""
_TAKE = """
WITH pool AS (  -- share: the limit over the processes that want slots (this one included)
    SELECT current_limit, pause_seconds, paused_until, now() AS at,
           ceil(current_limit::float8 / (1 + (
               SELECT count(*) FROM governor_wants w
               WHERE w.pool = %(pool)s AND w.holder <> %(me)s AND w.wants_until > now())))::int
           AS share,
           (SELECT count(*) FROM governor_slots m
            WHERE m.pool = %(pool)s AND m.holder = %(me)s AND m.expires_at > now()) AS mine
    FROM governor_pools WHERE pool = %(pool)s
), wants AS (
    INSERT INTO governor_wants (pool, holder, wants_until)
    VALUES (%(pool)s, %(me)s, now() + make_interval(secs => %(want_ttl)s))
    ON CONFLICT (pool, holder) DO UPDATE SET wants_until = EXCLUDED.wants_until
), free AS (
    SELECT s.slot FROM governor_slots s, pool
    WHERE s.pool = %(pool)s AND s.slot < pool.current_limit AND pool.mine < pool.share
      AND (pool.paused_until IS NULL OR pool.paused_until <= pool.at)
      AND (s.holder IS NULL OR s.expires_at < pool.at)
    ORDER BY s.slot LIMIT 1 FOR UPDATE OF s SKIP LOCKED
), taken AS (
    UPDATE governor_slots s SET holder = %(me)s,
        expires_at = pool.at + make_interval(secs => %(ttl)s)
    FROM free, pool WHERE s.pool = %(pool)s AND s.slot = free.slot
    RETURNING s.slot
)
SELECT (SELECT slot FROM taken), current_limit, pause_seconds,
       COALESCE(EXTRACT(EPOCH FROM (paused_until - at)), 0)::float8, share FROM pool
"""
_RELEASE = """
UPDATE governor_slots SET holder = NULL, expires_at = NULL
WHERE pool = %(pool)s AND slot = %(slot)s AND holder = %(me)s
"""
_RELEASE_ALL = """
WITH unwanted AS (DELETE FROM governor_wants WHERE holder = %(me)s)
UPDATE governor_slots SET holder = NULL, expires_at = NULL WHERE holder = %(me)s
"""
_RATE_LIMITED = """
UPDATE governor_pools SET current_limit = 1,
    paused_until = GREATEST(COALESCE(paused_until, now()),
                            now() + make_interval(secs => COALESCE(%(retry_after)s,
                                                                   pause_seconds))),
    pause_seconds = LEAST(%(max_pause)s, pause_seconds * 2), updated_at = now()
WHERE pool = %(pool)s
"""
_CLIMB = """
UPDATE governor_pools SET current_limit = LEAST(level, current_limit * 2),
    pause_seconds = %(first_pause)s, updated_at = now()
WHERE pool = %(pool)s AND current_limit = %(seen)s
  AND (paused_until IS NULL OR paused_until <= now())
RETURNING current_limit, pause_seconds,
          COALESCE(EXTRACT(EPOCH FROM (paused_until - now())), 0)::float8
"""
_RENEW = """
WITH renewed AS (
    UPDATE governor_slots SET expires_at = now() + make_interval(secs => %(ttl)s)
    WHERE holder = %(me)s
), restored AS (  -- governor_slots is UNLOGGED: empty after a crash or a fail-over
    INSERT INTO governor_slots (pool, slot)
    SELECT p.pool, n FROM governor_pools p, generate_series(0, p.level - 1) AS n
    WHERE p.pool = ANY(%(pools)s::text[])
    ON CONFLICT DO NOTHING
), wants AS (  -- the pools where requests of this process wait for a slot
    INSERT INTO governor_wants (pool, holder, wants_until)
    SELECT w, %(me)s, now() + make_interval(secs => %(want_ttl)s)
    FROM unnest(%(wanting)s::text[]) AS w
    ON CONFLICT (pool, holder) DO UPDATE SET wants_until = EXCLUDED.wants_until
)
SELECT pool, current_limit, pause_seconds,
       COALESCE(EXTRACT(EPOCH FROM (paused_until - now())), 0)::float8,
       ceil(current_limit::float8 / (1 + (
           SELECT count(*) FROM governor_wants w
           WHERE w.pool = p.pool AND w.holder <> %(me)s AND w.wants_until > now())))::int
FROM governor_pools p WHERE pool = ANY(%(pools)s::text[])
"""


_CONFIGURE_RATE = """
WITH gone AS (
    DELETE FROM governor_buckets
    WHERE pool = %(pool)s AND NOT (kind = ANY(%(kinds)s::text[]))
)
INSERT INTO governor_buckets (pool, kind, rate, tokens, refilled_at)
SELECT %(pool)s, kind, rate, rate, now()
FROM unnest(%(kinds)s::text[], %(rates)s::float8[]) AS limits(kind, rate)
ON CONFLICT (pool, kind) DO UPDATE SET rate = EXCLUDED.rate,
    tokens = LEAST(EXCLUDED.rate, governor_buckets.tokens)
"""
_TAKE_TOKENS = """
UPDATE governor_buckets SET
    tokens = LEAST(rate, tokens + rate * EXTRACT(EPOCH FROM (now() - refilled_at))::float8)
             - CASE kind WHEN 'requests' THEN %(requests)s ELSE %(events)s END,
    refilled_at = now()
WHERE pool = %(pool)s
RETURNING tokens, rate
"""


@dataclass(frozen=True)
class Shared:
    """A pool's state as the database has it: the limit of the moment, the next pause without
    Retry-After, how long the pause in force still lasts (0: none), and the slots this process
    may hold while others want some too (the limit over the processes that want slots)."""

    current: int
    pause_seconds: float
    pause_left: float
    share: int | None = None  # this process's fair share of the slots (None: not known)


@dataclass(frozen=True)
class _Taken:
    slot: int | None
    shared: Shared | None  # None: the pool has no row (never configured)


def conninfo(database_url: str) -> str:
    """A libpq connection string from segbridge's SQLAlchemy URL (postgresql+psycopg://...)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


def new_holder_id() -> str:
    """Who holds a slot: the machine, the process, and a nonce (a pid is reused)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


class _SlotStore:
    """The governor's SQL, on one connection of its own. Used from one thread only."""

    def __init__(self, url: str, holder: str) -> None:
        self._conninfo = conninfo(url)
        self.holder = holder
        self._connection: psycopg.Connection[Any] | None = None
        self._unreleased: list[tuple[str, int]] = []  # releases the database did not get

    def configure(self, pool: str, level: int) -> Shared:
        row = self._one(_CONFIGURE, {"pool": pool, "level": level,
                                     "first_pause": FIRST_PAUSE_SECONDS})
        assert row is not None
        return Shared(*row)

    def take(self, pool: str) -> _Taken:
        row = self._one(_TAKE, {"pool": pool, "me": self.holder, "ttl": SLOT_TTL_SECONDS,
                                "want_ttl": WANT_TTL_SECONDS})
        if row is None:
            return _Taken(None, None)
        return _Taken(row[0], Shared(*row[1:]))

    def release(self, pool: str, slot: int) -> None:
        try:
            self._execute(_RELEASE, {"pool": pool, "slot": slot, "me": self.holder})
        except psycopg.Error:
            log.warning("governor: slot %s of %s not given back yet; retrying with the next "
                        "heartbeat", slot, pool, exc_info=True)
            self._unreleased.append((pool, slot))

    def rate_limited(self, pool: str, retry_after: float | None) -> None:
        self._execute(_RATE_LIMITED, {"pool": pool, "retry_after": retry_after,
                                      "max_pause": MAX_PAUSE_SECONDS})

    def climb(self, pool: str, seen: int) -> Shared | None:
        row = self._one(_CLIMB, {"pool": pool, "seen": seen, "first_pause": FIRST_PAUSE_SECONDS})
        return None if row is None else Shared(*row)

    def renew(self, pools: list[str], wanting: list[str]) -> dict[str, Shared]:
        """Retry the releases that failed, renew every slot held and the wish for more slots
        of the ``wanting`` pools; the pools' states."""
        while self._unreleased:
            pool, slot = self._unreleased[0]
            self._execute(_RELEASE, {"pool": pool, "slot": slot, "me": self.holder})
            self._unreleased.pop(0)
        rows = self._all(_RENEW, {"me": self.holder, "ttl": SLOT_TTL_SECONDS, "pools": pools,
                                  "wanting": wanting, "want_ttl": WANT_TTL_SECONDS})
        return {row[0]: Shared(*row[1:]) for row in rows}

    def configure_rate(self, pool: str, limit: RateLimit) -> None:
        rates = limit.rates()
        self._execute(_CONFIGURE_RATE, {"pool": pool, "kinds": list(rates),
                                        "rates": list(rates.values())})

    def take_tokens(self, pool: str, requests: int, events: int) -> float:
        """Reserve from the pool's buckets (into debt if need be); the seconds to wait."""
        rows = self._all(_TAKE_TOKENS, {"pool": pool, "requests": float(requests),
                                        "events": float(events)})
        return max((max(0.0, -tokens / rate) for tokens, rate in rows), default=0.0)

    def release_all(self) -> None:
        self._unreleased.clear()
        self._execute(_RELEASE_ALL, {"me": self.holder})

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _one(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        return self._run(sql, params, lambda cursor: cursor.fetchone())

    def _all(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return self._run(sql, params, lambda cursor: cursor.fetchall())

    def _execute(self, sql: str, params: dict[str, Any]) -> None:
        self._run(sql, params, lambda _cursor: None)

    def _run(self, sql: str, params: dict[str, Any],
             fetch: Callable[[psycopg.Cursor[Any]], T]) -> T:
        """One statement, in a transaction of its own; a broken connection is opened anew on
        the next call."""
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self._conninfo, autocommit=True)
            # what the governor writes only matters while its processes live: no commit
            # waits for the disk (after a crash, slots expire and pools start afresh)
            self._connection.execute("SET synchronous_commit = off")
        try:
            with self._connection.cursor() as cursor:
                cursor.execute(sql, params, prepare=True)
                return fetch(cursor)
        except psycopg.OperationalError:
            self.close()
            raise


class ClusterGovernor(LocalGovernor):
    """``LocalGovernor`` plus one slot row per request, shared by every process that uses the
    same PostgreSQL database, and the 429 back-off shared the same way."""

    def __init__(self, database_url: str, clock: Clock = SYSTEM_CLOCK,
                 holder: str | None = None) -> None:
        super().__init__(clock)
        self.holder = holder or new_holder_id()
        self._store = _SlotStore(database_url, self.holder)
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

    async def _take_once(self, pool: str) -> _Taken:
        future = self._worker.submit(self._store.take, pool)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:  # the statement may still take a slot: give it back
            future.add_done_callback(lambda done: self._give_back_taken(pool, done))
            raise

    def _give_back_taken(self, pool: str, done: Future[_Taken]) -> None:
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
