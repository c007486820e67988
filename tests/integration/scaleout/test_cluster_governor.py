"""The cluster governor against real PostgreSQL and real processes: each process (a Python
subprocess, or a second governor of its own in this one) has its own ``ClusterGovernor`` on the
test's database, and a loopback HTTP receiver counts the requests in flight at once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from segbridge.concurrency import governor_for
from segbridge.concurrency.cluster import HEARTBEAT_SECONDS, MAX_POLL_SECONDS, ClusterGovernor
from segbridge.concurrency.cluster_store import SLOT_TTL_SECONDS
from segbridge.concurrency.governor import SUCCESSES_TO_CLIMB
from segbridge.concurrency.rates import RateLimit
from segbridge.core.settings import load_settings
from segbridge.storage.db import Database
from tests.support.databases import postgres_database

pytestmark = [pytest.mark.postgres, pytest.mark.sql]

POOL = "con_shared"

# one process of the cluster: its own governor on the same database, `tasks` concurrent senders
# sending `requests` requests each to the receiver; prints its results as JSON
CHILD = """
import asyncio, json, sys, time, urllib.request
from segbridge.concurrency.cluster import ClusterGovernor

url, pool, level, receiver, tasks, requests = sys.argv[1:7]

def post() -> None:
    urllib.request.urlopen(urllib.request.Request(receiver, data=b"{}"), timeout=10).read()

async def main() -> dict:
    governor = ClusterGovernor(url)
    governor.configure(pool, int(level))
    sent = 0
    async def sender() -> None:
        nonlocal sent
        for _ in range(int(requests)):
            await governor.acquire(pool)
            try:
                await asyncio.to_thread(post)
            finally:
                governor.release(pool)
            governor.succeeded(pool)
            sent += 1
    await asyncio.gather(*(sender() for _ in range(int(tasks))))
    governor.close()
    return {"sent": sent}

print(json.dumps(asyncio.run(main())), flush=True)
"""

# a process that takes every slot of the pool, says so, and waits to be killed
HOG = """
import asyncio, sys
from segbridge.concurrency.cluster import ClusterGovernor

url, pool, level = sys.argv[1:4]

async def main() -> None:
    governor = ClusterGovernor(url)
    governor.configure(pool, int(level))
    for _ in range(int(level)):
        await governor.acquire(pool)
    print("holding", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""

# a process that asks for one slot and reports when it got it (wall time) and the limit then
LATE = """
import asyncio, json, sys, time
from segbridge.concurrency.cluster import ClusterGovernor

url, pool, level = sys.argv[1:4]

async def main() -> dict:
    governor = ClusterGovernor(url)
    governor.configure(pool, int(level))
    asked = time.time()
    await governor.acquire(pool)
    got = time.time()
    governor.release(pool)
    limit = governor.limit_now(pool)
    governor.close()
    return {"asked": asked, "got": got, "limit": limit}

print(json.dumps(asyncio.run(main())), flush=True)
"""


class Receiver:
    """A loopback HTTP receiver that counts the requests it serves at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.in_flight = 0
        self.peak = 0
        self.served = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.enter()
                try:
                    time.sleep(owner.seconds)
                finally:
                    owner.leave()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/batch"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1
            self.served += 1

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Always PostgreSQL: a migrated database of the test's own."""
    with postgres_database(template=request.getfixturevalue("postgres_template")) as url:
        yield url


@pytest.fixture
def receiver_of_requests() -> Iterator[Receiver]:
    receiver = Receiver(seconds=0.02)
    yield receiver
    receiver.close()


def python(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def finished(process: subprocess.Popen[str], timeout: float = 90) -> dict[str, float]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def held_slots(url: str, pool: str) -> int:
    db = Database(url)
    try:
        with db.engine.connect() as connection:
            return int(connection.execute(sa.text(
                "SELECT count(*) FROM governor_slots WHERE pool = :pool AND holder IS NOT NULL "
                "AND expires_at > now()"), {"pool": pool}).scalar_one())
    finally:
        db.dispose()


def test_in_flight_requests_never_pass_the_level_across_three_processes(
        database_url: str, receiver_of_requests: Receiver) -> None:
    level, tasks, requests = 3, 6, 10
    processes = [python(CHILD, database_url, POOL, str(level), receiver_of_requests.url,
                        str(tasks), str(requests)) for _ in range(3)]
    results = [finished(process) for process in processes]

    assert [result["sent"] for result in results] == [tasks * requests] * 3
    assert receiver_of_requests.served == 3 * tasks * requests
    assert receiver_of_requests.peak == level  # reached, never passed
    assert held_slots(database_url, POOL) == 0  # every slot given back


def test_slots_of_a_killed_process_come_back_within_the_bound(database_url: str) -> None:
    level = 2
    hog = python(HOG, database_url, POOL, str(level))
    try:
        assert hog.stdout is not None
        assert hog.stdout.readline().strip() == "holding"
    except BaseException:
        hog.kill()
        raise

    async def main() -> tuple[bool, float]:
        governor = ClusterGovernor(database_url)
        try:
            governor.configure(POOL, level)
            try:
                await asyncio.wait_for(governor.acquire(POOL), timeout=0.5)
                blocked = False
            except TimeoutError:
                blocked = True
            hog.send_signal(signal.SIGKILL)
            hog.wait(timeout=10)
            killed = time.monotonic()
            for _ in range(level):
                await governor.acquire(POOL)
            return blocked, time.monotonic() - killed
        finally:
            governor.close()

    blocked, waited = asyncio.run(main())
    assert hog.stdout is not None
    hog.stdout.close()
    assert hog.stderr is not None
    hog.stderr.close()
    assert blocked  # the live process held every slot
    # the bound: the slots' expiry (renewed every second) plus one poll of the waiting process
    assert waited <= SLOT_TTL_SECONDS + MAX_POLL_SECONDS + 1.0, waited
    assert waited >= SLOT_TTL_SECONDS - HEARTBEAT_SECONDS - 0.5, waited  # expired, not freed


def test_a_429_seen_by_one_process_pauses_the_others(database_url: str) -> None:
    retry_after = 4.0

    async def rate_limited() -> float:
        governor = ClusterGovernor(database_url)
        try:
            governor.configure(POOL, 4)
            at = time.time()
            governor.rate_limited(POOL, retry_after)
            await asyncio.sleep(0.2)  # (the write goes out on the governor's own thread)
            return at
        finally:
            governor.close()

    seen_at = asyncio.run(rate_limited())
    other = finished(python(LATE, database_url, POOL, "4"))

    assert other["asked"] < seen_at + retry_after  # it asked during the pause ...
    assert other["got"] >= seen_at + retry_after - 0.2  # ... and waited for its end
    assert other["limit"] == 1  # the other process dropped to one slot too


def test_the_back_off_is_shared_and_climbs_back_with_successes(database_url: str) -> None:
    async def main() -> list[int]:
        first, second = ClusterGovernor(database_url), ClusterGovernor(database_url)
        try:
            for governor in (first, second):
                governor.configure(POOL, 4)
            first.rate_limited(POOL, 0.3)
            await asyncio.sleep(0.1)
            await second.acquire(POOL)  # waits out the pause, learns the limit of the moment
            limits = [second.limit_now(POOL)]
            second.release(POOL)
            for _ in range(2):  # 1 -> 2 -> 4
                for _ in range(SUCCESSES_TO_CLIMB):
                    second.succeeded(POOL)
                await asyncio.sleep(0.2)
                await first.acquire(POOL)  # the first follows what the second climbed to
                limits.append(first.limit_now(POOL))
                first.release(POOL)
            return limits
        finally:
            first.close()
            second.close()

    assert asyncio.run(main()) == [1, 2, 4]


def test_a_busy_process_hands_slots_over_without_asking_the_database_each_time(
        database_url: str) -> None:
    async def main() -> tuple[int, int]:
        governor = ClusterGovernor(database_url)
        try:
            governor.configure(POOL, 2)
            taken = 0
            original = governor._store.take

            def counting_take(pool: str):  # type: ignore[no-untyped-def]
                nonlocal taken
                taken += 1
                return original(pool)

            governor._store.take = counting_take  # type: ignore[method-assign]

            async def request() -> None:
                await governor.acquire(POOL)
                await asyncio.sleep(0.001)
                governor.release(POOL)

            await asyncio.gather(*(request() for _ in range(100)))
            await asyncio.sleep(0.1)
            return taken, governor.peak_in_flight(POOL)
        finally:
            governor.close()

    taken, peak = asyncio.run(main())
    assert peak == 2
    assert taken <= 4  # two slots taken once, each handed from request to request
    assert held_slots(database_url, POOL) == 0


def test_the_factory_picks_the_cluster_governor_for_postgresql(database_url: str,
                                                              tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", database_url=database_url)
    db = Database(database_url)
    try:
        governor = governor_for(settings, db)
        governor.close()
    finally:
        db.dispose()
    assert isinstance(governor, ClusterGovernor)


def test_a_canceled_request_leaves_no_slot_behind(database_url: str) -> None:
    async def main() -> None:
        governor = ClusterGovernor(database_url)
        try:
            governor.configure(POOL, 1)
            await governor.acquire(POOL)
            waiting = asyncio.create_task(governor.acquire(POOL))
            await asyncio.sleep(0.05)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            governor.release(POOL)
            await asyncio.wait_for(governor.acquire(POOL), timeout=2)  # the slot is free
            governor.release(POOL)
            await asyncio.sleep(0.1)
        finally:
            governor.close()

    asyncio.run(main())
    assert held_slots(database_url, POOL) == 0


def test_the_heartbeat_keeps_a_long_request_s_slot(database_url: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A request in flight longer than the slots' expiry keeps its slot: the heartbeat renews
    it (another process cannot take it), and nothing is logged as failing."""

    async def main() -> bool:
        holder, other = ClusterGovernor(database_url), ClusterGovernor(database_url)
        try:
            for governor in (holder, other):
                governor.configure(POOL, 1)
            await holder.acquire(POOL)
            await asyncio.sleep(SLOT_TTL_SECONDS + 2 * HEARTBEAT_SECONDS)
            try:
                await asyncio.wait_for(other.acquire(POOL), timeout=0.5)
                return False
            except TimeoutError:
                return True
            finally:
                holder.release(POOL)
        finally:
            holder.close()
            other.close()

    assert asyncio.run(main())
    assert [record.getMessage() for record in caplog.records
            if record.name.startswith("segbridge.concurrency")] == []


def test_busy_processes_share_the_slots_fairly(database_url: str) -> None:
    """Two processes (two governors with their own connections) saturating one pool: each gets
    about half of the requests, though the first one was alone at first."""

    async def main() -> tuple[int, int, int]:
        first, second = ClusterGovernor(database_url), ClusterGovernor(database_url)
        in_flight, peak = [0], [0]
        try:
            for governor in (first, second):
                governor.configure(POOL, 4)

            async def sender(governor: ClusterGovernor, until: float, done: list[int]) -> None:
                while time.monotonic() < until:
                    await governor.acquire(POOL)
                    in_flight[0] += 1
                    peak[0] = max(peak[0], in_flight[0])
                    await asyncio.sleep(0.02)
                    in_flight[0] -= 1
                    governor.release(POOL)
                    done[0] += 1

            end = time.monotonic() + 4
            alone, shared = [0], [0]
            early = [asyncio.create_task(sender(first, end, alone)) for _ in range(16)]
            await asyncio.sleep(1)  # the first holds every slot, handing them over inside
            late = [asyncio.create_task(sender(second, end, shared)) for _ in range(16)]
            await asyncio.gather(*early, *late)
            return alone[0], shared[0], peak[0]
        finally:
            first.close()
            second.close()

    alone, shared, peak = asyncio.run(main())
    assert peak == 4
    # the second worked 3 s of the 4, sharing: about 3/8 of the requests (at least a quarter)
    assert shared >= (alone + shared) / 4, (alone, shared)


def test_a_rate_limit_is_one_budget_for_every_process(database_url: str) -> None:
    """Two processes sending 15 requests each on a pool limited to 10 requests/s: 10 at once
    (one second's burst), then 10 a second for both together -- about 2 s, not the 0.5 s each
    process would take with a budget of its own."""

    async def main() -> float:
        first, second = ClusterGovernor(database_url), ClusterGovernor(database_url)
        try:
            for governor in (first, second):
                governor.configure(POOL, 4)
                governor.configure_rate(POOL, RateLimit(requests_per_second=10))

            async def send(governor: ClusterGovernor) -> None:
                for _ in range(15):
                    await governor.take_tokens(POOL, requests=1, events=500)

            started = time.monotonic()
            await asyncio.gather(send(first), send(second))
            return time.monotonic() - started
        finally:
            first.close()
            second.close()

    assert 1.8 <= asyncio.run(main()) <= 4.0


def test_without_a_rate_limit_no_round_trip_is_made(database_url: str) -> None:
    async def main() -> float:
        governor = ClusterGovernor(database_url)
        try:
            governor.configure(POOL, 4)
            governor.configure_rate(POOL, RateLimit())
            governor._store.take_tokens = None  # type: ignore[assignment,method-assign]
            return await governor.take_tokens(POOL, requests=1, events=10_000)
        finally:
            governor.close()

    assert asyncio.run(main()) == 0
