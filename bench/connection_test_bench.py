"""Benchmark: Test connection through the REST API, against the Local Segment (issue 17).

Starts a real ``segbridge serve`` on loopback with a fresh home, creates a Local Segment
source, saves a Segment connection to it (``/sandbox`` on the same server), then presses
Test connection on the saved connection N times (``POST /api/v1/connections/{id}/test``, one
after the other over one keep-alive connection) and reports the p50 and p99 of the request's
round trip, beside the ping latency the server measured itself (``latency_ms``).
Target: p50 under 10 ms, p99 under 50 ms.

    .venv/bin/python bench/connection_test_bench.py                  # 100 tests, SQLite
    .venv/bin/python bench/connection_test_bench.py --tests 300
    .venv/bin/python bench/connection_test_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from flows_bench import free_port  # noqa: E402 - bench/ is not a package
from webhook_bench import admin_token, start_server  # noqa: E402

TARGET_P50_MS = 10.0
TARGET_P99_MS = 50.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def saved_connection(api: httpx.Client, base: str) -> str:
    source = api.post("/sandbox/api/sources", json={"name": "Bench source"})
    assert source.status_code in (200, 201), source.text
    created = api.post("/api/v1/connections", json={
        "name": "Bench", "application": "segment",
        "settings": {"write_key": source.json()["write_key"], "endpoint": f"{base}/sandbox"}})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def press_test(api: httpx.Client, connection_id: str,
               tests: int) -> tuple[list[float], list[float]]:
    """Round trips and the server's own ping latencies, in ms."""
    round_trips: list[float] = []
    pings: list[float] = []
    for _ in range(tests):
        started = time.perf_counter()
        response = api.post(f"/api/v1/connections/{connection_id}/test")
        round_trips.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["ok"] is True, result
        pings.append(float(result["latency_ms"]))
    return round_trips, pings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="connection-test-bench-"))
    port = free_port()
    token = admin_token(home, args.database_url)
    server = start_server(home, args.database_url, port)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                          timeout=30, trust_env=False) as api:
            connection_id = saved_connection(api, base)
            press_test(api, connection_id, args.warmup)
            round_trips, pings = press_test(api, connection_id, args.tests)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
    p50, p99 = percentile(round_trips, 0.5), percentile(round_trips, 0.99)
    verdict = "met" if p50 < TARGET_P50_MS and p99 < TARGET_P99_MS else "NOT met"
    print(f"{args.tests} tests of a saved connection: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
          f"(mean {statistics.mean(round_trips):.1f}); the ping itself p50 "
          f"{percentile(pings, 0.5):.1f} ms; target p50 < {TARGET_P50_MS:.0f} ms and "
          f"p99 < {TARGET_P99_MS:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
