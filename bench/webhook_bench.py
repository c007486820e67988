"""Benchmark: webhook requests accepted per second by one `segbridge serve` process, and
their accept latency (from the request's first byte sent to its 200 read: the records are
committed by then), with N concurrent keep-alive clients; then how long the flow takes to
deliver every accepted record to a counting receiver (bench/counting_receiver.py).
Target (issue 13): at least 2,000 requests/s, p99 under 50 ms.

    python bench/webhook_bench.py                       # SQLite, 32 clients, 10 s
    python bench/webhook_bench.py --clients 64 --seconds 20
    python bench/webhook_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

The clients are a bare asyncio HTTP/1.1 client in this process (one connection each), so the
load costs little CPU beside the server's; the server also delivers the records (its run
executor) while it accepts, as it would in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from flows_bench import free_port, received, start_receiver  # noqa: E402 - bench/ is not a package

TARGET_RPS = 2000
TARGET_P99_MS = 50.0


def start_server(home: Path, database_url: str | None, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGBRIDGE_")}
    env["SEGBRIDGE_HOME"] = str(home)
    env["SEGBRIDGE_LOG_LEVEL"] = "WARNING"
    if database_url:
        env["SEGBRIDGE_DATABASE_URL"] = database_url
    process = subprocess.Popen([sys.executable, "-m", "segbridge.cli", "serve", "--port",
                                str(port)], env=env, stdout=subprocess.DEVNULL)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", trust_env=False).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("segbridge serve did not start")


def admin_token(home: Path, database_url: str | None) -> str:
    from segbridge.accounts import service as accounts
    from segbridge.core.settings import load_settings
    from segbridge.runtime import ADMIN_EMAIL, build_runtime, first_start

    overrides: dict[str, Any] = {"home": home}
    if database_url:
        overrides["database_url"] = database_url
    runtime = build_runtime(load_settings(**overrides))
    try:
        first_start(runtime)
        with runtime.db.session() as session:
            user = accounts.find_user(session, ADMIN_EMAIL)
            return accounts.issue_token(session, user, kind="api", name="bench")
    finally:
        runtime.close()


def webhook_path(base: str, token: str, receiver: str, *,
                 deliver: bool = True) -> tuple[str, str]:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                      trust_env=False, timeout=30) as api:
        api.post("/api/v1/integrations", json={"name": "Bench"}).raise_for_status()
        api.post("/api/v1/connections", json={
            "name": "Receiver", "application": "segment",
            "settings": {"write_key": "bench-key", "endpoint": receiver}}).raise_for_status()
        flow = api.post("/api/v1/flows", json={
            "name": "Hooks", "integration": "Bench", "enabled": deliver,
            "export": {"type": "webhook", "batch": {"max_records": 20000, "max_seconds": 1}},
            "imports": [{"name": "Orders", "connection": "Receiver", "call": "track",
                         "mapping": {"userId": "user_id", "event": {"constant": "Order"},
                                     "properties": {"all_other_fields": True}}}]})
        flow.raise_for_status()
        listener = api.post(f"/api/v1/flows/{flow.json()['id']}/webhook")
        listener.raise_for_status()
        return urlparse(listener.json()["url"]).path, str(flow.json()["id"])


async def client(port: int, path: str, stop_at: float, measure_from: float,
                 latencies: list[float], statuses: dict[int, int], number: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0
    try:
        while time.monotonic() < stop_at:
            body = orjson.dumps({"user_id": f"u{number}", "order_id": f"{number}-{sent}",
                                 "total": "12.50", "currency": "EUR", "sku": "sku-1"})
            sent += 1
            head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                    f"application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
            started = time.monotonic()
            writer.write(head + body)
            status = await read_response(reader)
            if started >= measure_from:
                latencies.append(time.monotonic() - started)
                statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def load(port: int, path: str, clients: int, seconds: float,
               warmup: float) -> tuple[list[float], dict[int, int], float]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.monotonic()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    await asyncio.gather(*(client(port, path, stop_at, measure_from, latencies, statuses, n)
                           for n in range(clients)))
    return latencies, statuses, seconds


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000 if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--no-delivery", action="store_true",
                        help="a disabled flow: records are accepted and stored, not delivered")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="webhook-bench-"))
    receiver, receiver_url = start_receiver()
    port = free_port()
    server = None
    try:
        token = admin_token(home, args.database_url)
        server = start_server(home, args.database_url, port)
        path, _flow = webhook_path(f"http://127.0.0.1:{port}", token, receiver_url,
                                   deliver=not args.no_delivery)
        before = received(receiver_url)
        latencies, statuses, seconds = asyncio.run(
            load(port, path, args.clients, args.seconds, args.warmup))
        accepted = statuses.get(200, 0)
        all_sent = time.monotonic()
        total_accepted_goal = before + (0 if args.no_delivery else accepted)
        while received(receiver_url) < total_accepted_goal and time.monotonic() - all_sent < 120:
            time.sleep(0.2)
        lag = time.monotonic() - all_sent
        result = {
            "database": "postgresql" if args.database_url else "sqlite",
            "clients": args.clients, "seconds": seconds,
            "accepted_per_second": round(accepted / seconds),
            "p50_ms": round(percentile(latencies, 0.50), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2),
            "statuses": statuses, "delivered_after_last_request_s": round(lag, 2),
            "delivered": received(receiver_url),
        }
        result["target_met"] = (result["accepted_per_second"] >= TARGET_RPS
                                and result["p99_ms"] < TARGET_P99_MS)
        print(json.dumps(result))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        receiver.terminate()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
