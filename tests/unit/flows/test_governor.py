from __future__ import annotations

import asyncio

from segbridge.concurrency.governor import SUCCESSES_TO_CLIMB, LocalGovernor


async def hold(governor: LocalGovernor, pool: str, seconds: float, active: list[int],
               peak: list[int]) -> None:
    await governor.acquire(pool)
    active[0] += 1
    peak[0] = max(peak[0], active[0])
    await asyncio.sleep(seconds)
    active[0] -= 1
    governor.release(pool)


def test_in_flight_requests_never_pass_the_level() -> None:
    async def main() -> int:
        governor = LocalGovernor()
        governor.configure("con_a", 3)
        active, peak = [0], [0]
        await asyncio.gather(*(hold(governor, "con_a", 0.01, active, peak) for _ in range(30)))
        return peak[0]

    assert asyncio.run(main()) == 3


def test_two_users_of_one_pool_share_its_limit() -> None:
    async def main() -> int:
        governor = LocalGovernor()
        governor.configure("lender", 2)
        governor.configure("lender", 2)  # a second flow configures the same pool
        active, peak = [0], [0]
        await asyncio.gather(*(hold(governor, "lender", 0.01, active, peak) for _ in range(20)))
        return peak[0]

    assert asyncio.run(main()) == 2


def test_waiters_are_served_in_order() -> None:
    async def main() -> list[int]:
        governor = LocalGovernor()
        governor.configure("p", 1)
        await governor.acquire("p")
        order: list[int] = []

        async def wait(n: int) -> None:
            await governor.acquire("p")
            order.append(n)
            governor.release("p")

        tasks = [asyncio.create_task(wait(n)) for n in range(5)]
        await asyncio.sleep(0.01)
        governor.release("p")
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_a_429_drops_to_one_slot_pauses_then_climbs_back() -> None:
    async def main() -> tuple[float, int, int, int]:
        governor = LocalGovernor()
        governor.configure("p", 8)
        wait = governor.rate_limited("p", retry_after=0.05)
        after_429 = governor.limit_now("p")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await governor.acquire("p")
        waited = loop.time() - started
        governor.release("p")
        for _ in range(SUCCESSES_TO_CLIMB):
            governor.succeeded("p")
        climbed = governor.limit_now("p")
        for _ in range(SUCCESSES_TO_CLIMB * 3):
            governor.succeeded("p")
        return wait, after_429, climbed, governor.limit_now("p") + int(waited >= 0.04) * 100

    wait, after_429, climbed, final = asyncio.run(main())
    assert wait == 0.05
    assert after_429 == 1
    assert climbed == 2
    assert final == 108  # back to the level (8), and the pause was honoured


def test_without_retry_after_the_pause_doubles() -> None:
    governor = LocalGovernor()
    governor.configure("p", 4)
    assert [governor.rate_limited("p", None) for _ in range(3)] == [1.0, 2.0, 4.0]
