"""Benchmark of the cluster governor (issue 15).

    .venv/bin/python bench/governor_bench.py micro     # requests/s through acquire/release
    .venv/bin/python bench/governor_bench.py run --rows 300000   # one big run, events/s

micro: 32 senders per process on one pool of level 8, each request "takes" --request-ms
(asyncio.sleep) between acquire and release; LocalGovernor, HostGovernor (file locks),
ClusterGovernor in 1 process and in 3 processes (requests/s summed). Counts the database
round trips of the cluster governor per request.

run: bench/flows_bench.py's one big run (CSV -> track calls -> the counting receiver), on a
PostgreSQL database, once with the HostGovernor and once with the ClusterGovernor, alternated.
Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust), as the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent
for candidate in (ROOT, ROOT.parent / "bench", Path("/work/main/bench")):
    if (candidate / "flows_bench.py").exists():
        sys.path.insert(0, str(candidate))
        break

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def new_database() -> str:
    name = f"segbridge_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    from segbridge.storage.db import Database

    db = Database(url)
    db.migrate()
    db.dispose()
    return url


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- micro ------------------------------------------------------------------------------------
def micro_child(kind: str, url: str, seconds: float, request_ms: float,
                start_at: float) -> dict[str, Any]:
    from segbridge.concurrency.cluster import ClusterGovernor
    from segbridge.concurrency.governor import LocalGovernor
    from segbridge.concurrency.host import HostGovernor

    trips = [0]

    async def main() -> int:
        governor: LocalGovernor
        if kind == "cluster":
            cluster = ClusterGovernor(url)
            for name in ("take", "release"):
                original = getattr(cluster._store, name)

                def counted(*args: Any, _original: Any = original) -> Any:
                    trips[0] += 1
                    return _original(*args)

                setattr(cluster._store, name, counted)
            governor = cluster
        elif kind == "host":
            governor = HostGovernor(Path(tempfile.mkdtemp()) / "slots")
        else:
            governor = LocalGovernor()
        governor.configure("bench", 8)
        done = [0]
        await asyncio.sleep(max(0.0, start_at - time.time()))  # every process at once
        end = time.perf_counter() + seconds

        async def sender() -> None:
            while time.perf_counter() < end:
                await governor.acquire("bench")
                try:
                    if request_ms:
                        await asyncio.sleep(request_ms / 1000)
                    else:
                        await asyncio.sleep(0)
                finally:
                    governor.release("bench")
                governor.succeeded("bench")
                done[0] += 1

        await asyncio.gather(*(sender() for _ in range(32)))
        governor.close()
        return done[0]

    done = asyncio.run(main())
    return {"requests": done, "per_s": done / seconds, "db_trips": trips[0]}


def micro(args: argparse.Namespace) -> None:
    url = new_database()
    try:
        for request_ms in (0.0, 5.0, 20.0):
            rows = []
            for kind, processes in (("local", 1), ("host", 1), ("cluster", 1),
                                    ("cluster", 3)):
                start_at = time.time() + 4  # after every child's imports
                children = [subprocess.Popen(
                    [sys.executable, __file__, "micro-child", kind, url, str(args.seconds),
                     str(request_ms), str(start_at)], stdout=subprocess.PIPE, text=True)
                    for _ in range(processes)]
                results = [json.loads(child.communicate()[0].strip().splitlines()[-1])
                           for child in children]
                total = sum(result["per_s"] for result in results)
                trips = sum(result["db_trips"] for result in results)
                requests = sum(result["requests"] for result in results)
                shares = "/".join(f"{result['per_s']:.0f}" for result in results)
                rows.append((kind, processes, total, trips / max(1, requests), shares))
            print(f"request {request_ms:g} ms, level 8, 32 senders per process:")
            for kind, processes, total, per_request, shares in rows:
                print(f"  {kind:8} x{processes}: {total:10.0f} requests/s"
                      f"  ({per_request:.3f} database round trips per request; per process "
                      f"{shares})")
    finally:
        drop_database(url)


# -- one big run ----------------------------------------------------------------------------
def run_child(governor: str, url: str, rows: int, csv_path: str, database: str) -> None:
    import flows_bench

    import segbridge.runs.executor as executor
    from segbridge.core import settings as settings_module

    trips, misses, waits, in_store = [0], [0], [], []
    if governor == "host":
        from segbridge.concurrency.host import HostGovernor

        def host_governor(settings: Any, db: Any, clock: Any = None) -> HostGovernor:
            return HostGovernor(settings.home / "slots")

        executor.governor_for = host_governor  # type: ignore[assignment]
        original_host_acquire = HostGovernor.acquire

        async def timed_host_acquire(self: Any, pool: str) -> None:
            started = time.perf_counter()
            await original_host_acquire(self, pool)
            waits.append(time.perf_counter() - started)

        HostGovernor.acquire = timed_host_acquire  # type: ignore[method-assign]
    else:
        from segbridge.concurrency import cluster

        for name in ("take", "release"):
            original = getattr(cluster.SlotStore, name)

            def counted(self: Any, *args: Any, _original: Any = original) -> Any:
                trips[0] += 1
                return _original(self, *args)

            setattr(cluster.SlotStore, name, counted)
        original_acquire = cluster.ClusterGovernor.acquire
        original_take = cluster.SlotStore.take

        async def timed_acquire(self: Any, pool: str) -> None:
            started = time.perf_counter()
            await original_acquire(self, pool)
            waits.append(time.perf_counter() - started)

        def take_counting_misses(self: Any, pool: str) -> Any:
            started = time.perf_counter()
            taken = original_take(self, pool)
            in_store.append(time.perf_counter() - started)
            if taken.slot is None:
                misses[0] += 1
            return taken

        cluster.ClusterGovernor.acquire = timed_acquire  # type: ignore[method-assign]
        cluster.SlotStore.take = take_counting_misses  # type: ignore[method-assign]
    original = settings_module.load_settings

    def with_database(**overrides: Any) -> Any:
        return original(**overrides, database_url=database)

    settings_module.load_settings = with_database  # type: ignore[assignment]
    home = Path(tempfile.mkdtemp(prefix="governor-bench-home-"))
    flows_bench.set_up_segbridge(home, url, Path(csv_path))
    result = flows_bench.run_segbridge(home, Path(csv_path))
    result["db_trips"] = trips[0]
    result["misses"] = misses[0]
    result["acquires"] = len(waits)
    result["acquire_wait_s"] = sum(waits)
    result["max_wait_s"] = max(waits, default=0)
    result["take_s"] = sum(in_store)
    result["max_take_s"] = max(in_store, default=0)
    print(json.dumps(result))


def run(args: argparse.Namespace) -> None:
    import flows_bench

    folder = Path(tempfile.mkdtemp(prefix="governor-bench-"))
    csv_path = folder / "orders.csv"
    flows_bench.write_rows(csv_path, args.rows)
    receiver, url = flows_bench.start_receiver()
    try:
        for attempt in range(args.repeat):
            order = ("host", "cluster") if attempt % 2 == 0 else ("cluster", "host")
            for governor in order:
                database = new_database()
                try:
                    before = flows_bench.received(url)
                    output = subprocess.run(
                        [sys.executable, __file__, "run-child", governor, url, str(args.rows),
                         str(csv_path), database], check=True, capture_output=True,
                        text=True).stdout
                    result = json.loads(output.strip().splitlines()[-1])
                    got = flows_bench.received(url) - before
                    print(f"  #{attempt + 1} {governor:8}: {got / result['seconds']:9.0f} "
                          f"events/s ({got} events in {result['seconds']:.1f} s; "
                          f"{result['db_trips']} take/release round trips)", flush=True)
                    if True:
                        print(f"      acquires {result['acquires']}, misses "
                              f"{result['misses']}, waited {result['acquire_wait_s']:.2f} s "
                              f"in all, at most {result['max_wait_s'] * 1000:.1f} ms; "
                              f"takes {result.get('take_s', 0):.2f} s in the database's thread, "
                              f"at most {result.get('max_take_s', 0) * 1000:.1f} ms",
                              flush=True)
                finally:
                    drop_database(database)
    finally:
        receiver.terminate()
        receiver.wait()


def main() -> None:
    if sys.argv[1] == "micro-child":
        kind, url, seconds, request_ms, start_at = sys.argv[2:7]
        print(json.dumps(micro_child(kind, url, float(seconds), float(request_ms),
                                     float(start_at))))
        return
    if sys.argv[1] == "run-child":
        governor, url, rows, csv_path, database = sys.argv[2:7]
        run_child(governor, url, int(rows), csv_path, database)
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["micro", "run"])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    micro(args) if args.what == "micro" else run(args)


if __name__ == "__main__":
    main()
