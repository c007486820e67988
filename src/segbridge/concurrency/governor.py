"""The governor: a FIFO pool of request slots per lending connection.

A connection's requests, and those of every connection that borrows from it, draw slots from
one pool keyed by the root lender's id, so two flows on one connection share one limit. On a
429 the pool drops to one slot and pauses (Retry-After, else a doubling wait), then doubles its
slots again after a run of successes, up to the connection's level.

``Governor`` is the interface; ``LocalGovernor`` serves one process (all runs of a process share
one event loop); ``host.HostGovernor`` adds slot file locks so the processes of one machine
share a limit; ``cluster.ClusterGovernor`` shares it (and the 429 back-off) through
PostgreSQL between the processes of every machine. ``segbridge.concurrency.governor_for``
picks the one for an install.

Pauses are measured and waited on the governor's ``Clock`` (the system's unless given), so a
test with a simulated clock sees a 60 s pause end without waiting 60 s.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from segbridge.concurrency.rates import LocalBuckets, RateLimit
from segbridge.core.clock import SYSTEM_CLOCK, Clock

SUCCESSES_TO_CLIMB = 5
FIRST_PAUSE_SECONDS = 1.0
MAX_PAUSE_SECONDS = 60.0
NO_RATE_LIMIT = RateLimit()


class Governor(Protocol):
    def configure(self, pool: str, limit: int) -> None:
        """Set a pool's limit (the lender's concurrency level)."""

    async def acquire(self, pool: str) -> None:
        """Wait, in FIFO order, for a slot of the pool."""

    def release(self, pool: str) -> None:
        """Give a slot back."""

    def rate_limited(self, pool: str, retry_after: float | None) -> float:
        """A 429: drop to one slot and pause; return the pause in seconds."""

    def succeeded(self, pool: str) -> None:
        """A success: after enough of them, allow more slots again."""

    def limit_now(self, pool: str) -> int:
        """The number of slots the pool allows at the moment."""

    def configure_rate(self, pool: str, limit: RateLimit) -> None:
        """Set a pool's rate limit (requests/s, events/s; the lender's)."""

    async def take_tokens(self, pool: str, requests: int = 1, events: int = 0) -> float:
        """Wait until the pool's rate limit allows sending a request of ``events`` events;
        return the seconds waited (at once when the pool has no rate limit)."""

    def rate_limit(self, pool: str) -> RateLimit:
        """The pool's rate limit as configured (no limit when none was)."""


@dataclass
class _Pool:
    limit: int
    current: int
    in_flight: int = 0
    successes: int = 0
    pause: float = FIRST_PAUSE_SECONDS
    paused_until: float = 0.0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    peak_in_flight: int = 0
    wake: asyncio.Task[None] | None = None  # the wake-up at the end of a pause, while waiting


class LocalGovernor:
    """The in-process governor. All its methods run on one event loop."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._pools: dict[str, _Pool] = {}
        self._clock = clock
        self._rates = LocalBuckets(clock)  # (in this process only)
        self._rate_limits: dict[str, RateLimit] = {}

    def configure(self, pool: str, limit: int) -> None:
        existing = self._pools.get(pool)
        if existing is None:
            self._pools[pool] = _Pool(limit=limit, current=limit)
            return
        existing.limit = limit
        existing.current = min(existing.current, limit)

    async def acquire(self, pool: str) -> None:
        state = self._pools[pool]
        if not state.waiters and self._has_room(state):
            self._take(state)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiters.append(waiter)
        self._hand_over(pool, state)  # schedules a wake-up when the pool is paused
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter in state.waiters:
                state.waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self._give_back(pool)
            raise

    def release(self, pool: str) -> None:
        self._give_back(pool)

    def _give_back(self, pool: str) -> None:
        """This process's slot of the pool is free again (subclasses release more)."""
        state = self._pools[pool]
        state.in_flight -= 1
        self._hand_over(pool, state)

    def rate_limited(self, pool: str, retry_after: float | None) -> float:
        state = self._pools[pool]
        state.current = 1
        state.successes = 0
        wait = retry_after if retry_after is not None else state.pause
        state.pause = min(MAX_PAUSE_SECONDS, state.pause * 2)
        state.paused_until = max(state.paused_until, self._clock.monotonic() + wait)
        return wait

    def succeeded(self, pool: str) -> None:
        state = self._pools[pool]
        state.pause = FIRST_PAUSE_SECONDS
        if state.current >= state.limit:
            return
        state.successes += 1
        if state.successes >= SUCCESSES_TO_CLIMB:
            state.successes = 0
            state.current = min(state.limit, state.current * 2)
            self._hand_over(pool, state)

    def limit_now(self, pool: str) -> int:
        return self._pools[pool].current

    def configure_rate(self, pool: str, limit: RateLimit) -> None:
        self._rates.configure(pool, limit)
        self._rate_limits[pool] = limit

    def rate_limit(self, pool: str) -> RateLimit:
        return self._rate_limits.get(pool, NO_RATE_LIMIT)

    async def take_tokens(self, pool: str, requests: int = 1, events: int = 0) -> float:
        return await self._rates.take(pool, requests, events)

    def peak_in_flight(self, pool: str) -> int:
        return self._pools[pool].peak_in_flight

    def close(self) -> None:
        """Free what the governor holds outside the process (nothing, here)."""

    def _has_room(self, state: _Pool) -> bool:
        return state.in_flight < state.current and self._clock.monotonic() >= state.paused_until

    def _take(self, state: _Pool) -> None:
        state.in_flight += 1
        state.peak_in_flight = max(state.peak_in_flight, state.in_flight)

    def _hand_over(self, pool: str, state: _Pool) -> None:
        while state.waiters and self._has_room(state):
            waiter = state.waiters.popleft()
            if waiter.done():
                continue
            self._take(state)
            waiter.set_result(None)
        if state.waiters and state.in_flight < state.current and _no_wake(state):
            delay = state.paused_until - self._clock.monotonic()
            if delay > 0:
                state.wake = asyncio.get_running_loop().create_task(
                    self._wake_after(delay, pool, state))

    async def _wake_after(self, delay: float, pool: str, state: _Pool) -> None:
        """At the end of the pause, hand the free slots to the waiters."""
        await self._clock.sleep(delay)
        state.wake = None
        self._hand_over(pool, state)


def _no_wake(state: _Pool) -> bool:
    """No wake-up is pending (one whose event loop ended was cancelled: it counts as none)."""
    return state.wake is None or state.wake.done()
