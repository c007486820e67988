"""The clock that tests inject: simulated time moves only when someone sleeps or advances it,
and the governor's pauses run on it (a 60 s pause ends at once, in real time)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from segbridge.concurrency.governor import LocalGovernor
from segbridge.core.clock import SIMULATION_START, SYSTEM_CLOCK, SimulatedClock


def test_a_simulated_sleep_moves_the_clock_at_once() -> None:
    clock = SimulatedClock()
    began = time.monotonic()
    asyncio.run(clock.sleep(3600))
    assert time.monotonic() - began < 1
    assert clock.monotonic() == 3600
    assert clock.now() == SIMULATION_START + timedelta(hours=1)
    assert clock.slept == [3600]


def test_a_simulated_clock_never_goes_back() -> None:
    clock = SimulatedClock()
    clock.advance(5)
    clock.advance(-3)
    assert clock.monotonic() == 5


def test_the_system_clock_is_real_time() -> None:
    before = time.monotonic()
    asyncio.run(SYSTEM_CLOCK.sleep(0.01))
    assert SYSTEM_CLOCK.monotonic() - before >= 0.01
    assert SYSTEM_CLOCK.now().tzinfo is not None


def test_a_429_pause_of_a_minute_ends_on_the_governors_clock() -> None:
    clock = SimulatedClock()

    async def main() -> tuple[float, float]:
        governor = LocalGovernor(clock)
        governor.configure("p", 4)
        wait = governor.rate_limited("p", retry_after=60)
        await asyncio.wait_for(governor.acquire("p"), timeout=5)  # 5 real seconds at most
        governor.release("p")
        return wait, clock.monotonic()

    began = time.monotonic()
    wait, waited = asyncio.run(main())
    assert wait == 60
    assert waited >= 60  # the waiter got its slot only once the pause was over
    assert time.monotonic() - began < 5


def test_a_waiter_is_not_served_before_the_pause_ends() -> None:
    clock = SimulatedClock()

    async def main() -> list[float]:
        governor = LocalGovernor(clock)
        governor.configure("p", 2)
        governor.rate_limited("p", retry_after=30)
        served: list[float] = []

        async def request() -> None:
            await governor.acquire("p")
            served.append(clock.monotonic())
            governor.release("p")

        await asyncio.wait_for(asyncio.gather(request(), request()), timeout=5)
        return served

    assert all(moment >= 30 for moment in asyncio.run(main()))
