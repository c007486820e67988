"""The governor: a FIFO pool of request slots per lending connection.

A connection's requests, and those of every connection that borrows from it, draw slots from
one pool keyed by the root lender's id, so two flows on one connection share one limit. On a
429 the pool drops to one slot and pauses (Retry-After, else a doubling wait), then doubles its
slots again after a run of successes, up to the connection's level.

``Governor`` is the interface; ``LocalGovernor`` serves one process (all runs of a process share
one event loop); ``host.HostGovernor`` adds slot file locks so the processes of one machine
share a limit. A Redis-backed governor for workers on several machines would implement the
same interface.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

SUCCESSES_TO_CLIMB = 5
FIRST_PAUSE_SECONDS = 1.0
MAX_PAUSE_SECONDS = 60.0


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
    wake_scheduled: bool = False


class LocalGovernor:
    """The in-process governor. All its methods run on one event loop."""

    def __init__(self) -> None:
        self._pools: dict[str, _Pool] = {}

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
        state.paused_until = max(state.paused_until, time.monotonic() + wait)
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

    def peak_in_flight(self, pool: str) -> int:
        return self._pools[pool].peak_in_flight

    def _has_room(self, state: _Pool) -> bool:
        return state.in_flight < state.current and time.monotonic() >= state.paused_until

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
        if state.waiters and state.in_flight < state.current and not state.wake_scheduled:
            delay = state.paused_until - time.monotonic()
            if delay > 0:
                state.wake_scheduled = True
                asyncio.get_running_loop().call_later(delay, self._wake, pool, state)

    def _wake(self, pool: str, state: _Pool) -> None:
        state.wake_scheduled = False
        self._hand_over(pool, state)
