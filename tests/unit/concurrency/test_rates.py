"""Rate limits as token buckets in one process (the cluster's share the arithmetic; they are
tested against PostgreSQL in tests/integration/scaleout/test_cluster_governor.py)."""

from __future__ import annotations

import asyncio

import pytest

from segbridge.concurrency.governor import LocalGovernor
from segbridge.concurrency.rates import RateLimit
from segbridge.core.clock import SimulatedClock


async def send(governor: LocalGovernor, clock: SimulatedClock, batches: list[int]) -> float:
    started = clock.monotonic()
    for events in batches:
        await governor.take_tokens("p", requests=1, events=events)
    return clock.monotonic() - started


def test_requests_per_second_beyond_a_one_second_burst_wait_their_turn() -> None:
    clock = SimulatedClock()
    governor = LocalGovernor(clock)
    governor.configure_rate("p", RateLimit(requests_per_second=10))
    # 10 at once (the burst), then one every 0.1 s
    assert asyncio.run(send(governor, clock, [0] * 25)) == pytest.approx(1.5)


def test_events_per_second_count_each_batch_s_events() -> None:
    clock = SimulatedClock()
    governor = LocalGovernor(clock)
    governor.configure_rate("p", RateLimit(events_per_second=1000))
    # 600 from the burst; 600 more owe 200 (0.2 s); 600 more owe 600 (0.6 s)
    assert asyncio.run(send(governor, clock, [600, 600, 600])) == pytest.approx(0.8)


def test_both_limits_the_slower_one_decides() -> None:
    clock = SimulatedClock()
    governor = LocalGovernor(clock)
    governor.configure_rate("p", RateLimit(requests_per_second=100, events_per_second=100))
    assert asyncio.run(send(governor, clock, [50] * 4)) == pytest.approx(1.0)


def test_a_pool_without_a_rate_limit_never_waits() -> None:
    clock = SimulatedClock()
    governor = LocalGovernor(clock)
    governor.configure_rate("p", RateLimit())
    assert asyncio.run(send(governor, clock, [10_000] * 100)) == 0
