from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

from segbridge.concurrency.governor import SUCCESSES_TO_CLIMB, LocalGovernor
from segbridge.concurrency.host import HostGovernor


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


def test_processes_of_one_home_share_a_connection_limit(tmp_path: Path) -> None:
    """Two HostGovernors on one folder act as two processes: flock locks taken through
    different open files exclude each other even inside one process."""

    async def main() -> tuple[int, int]:
        server, terminal = HostGovernor(tmp_path), HostGovernor(tmp_path)
        for governor in (server, terminal):
            governor.configure("lender", 2)
        active, peak = [0], [0]
        await asyncio.gather(*(hold(governor, "lender", 0.01, active, peak)
                               for governor in (server, terminal) for _ in range(10)))
        server.close()
        terminal.close()
        return peak[0], active[0]

    assert asyncio.run(main()) == (2, 0)


def test_a_slot_held_by_a_dead_holder_is_free_again(tmp_path: Path) -> None:
    async def main() -> None:
        dead = HostGovernor(tmp_path)
        dead.configure("lender", 1)
        await dead.acquire("lender")
        alive = HostGovernor(tmp_path)
        alive.configure("lender", 1)
        waiting = asyncio.create_task(alive.acquire("lender"))
        while alive.peak_in_flight("lender") == 0:  # until it has its in-process slot ...
            await asyncio.sleep(0)
        # ... and so has tried the slot file once (in the same step): the other process holds it
        assert not waiting.done()
        assert slot_is_locked(tmp_path / "lender" / "0.lock")
        dead.close()  # what the kernel does for a killed process: its locks go
        await asyncio.wait_for(waiting, 1)
        alive.release("lender")
        alive.close()

    asyncio.run(main())


def slot_is_locked(path: Path) -> bool:
    """What the kernel says about a slot file: another open file holds its lock."""
    descriptor = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return False
    finally:
        os.close(descriptor)
