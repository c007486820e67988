"""Time in one place, so tests can reason about it.

Code that waits, or measures how long something lasts, takes a ``Clock`` (``SYSTEM_CLOCK``
unless told otherwise): the wall time (``now``), seconds for durations (``monotonic``) and an
async ``sleep``. Tests hand over a ``SimulatedClock`` instead, whose ``sleep`` moves its time
forward at once: a receiver "down for 20 s", a 60 s back-off or a governor's pause then take
no real time, and the test still sees the 20 s go by on the clock.

Only waiting *for time itself* goes through the clock. Waiting for another process or for the
network (a lock held elsewhere, an answer) stays real.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

SIMULATION_START = datetime(2026, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Clock(Protocol):
    """What time it is, how much of it went by, and waiting for some of it."""

    def now(self) -> datetime:
        """The wall time, aware, in UTC."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; only differences mean something."""

    async def sleep(self, seconds: float) -> None:
        """Let ``seconds`` go by (other tasks run meanwhile)."""


class SystemClock:
    """The machine's clock: real time, real waits."""

    def now(self) -> datetime:
        return utcnow()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()


class SimulatedClock:
    """A clock for tests: time moves only by ``advance`` or by someone's ``sleep``.

    ``sleep(s)`` moves the clock ``s`` seconds forward and returns at once (after letting the
    other ready tasks run, as a real sleep would). Every part that shares the clock sees the
    same time, so a server thread's "down until t" ends when the client has slept long enough.
    ``slept`` keeps each sleep's length, for tests that check what was waited for. Safe to use
    from several threads.
    """

    def __init__(self, start: datetime = SIMULATION_START) -> None:
        self._start = start
        self._elapsed = 0.0
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    def advance(self, seconds: float) -> None:
        """Move the clock forward (never back)."""
        with self._lock:
            self._elapsed += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)
