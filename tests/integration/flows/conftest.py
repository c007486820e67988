"""Flows against real parts: a segbridge server with its run executor, and a separate local
Segment receiver with an archive and fault injection, both on loopback."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from segbridge.core.clock import SYSTEM_CLOCK, Clock
from segbridge.sandbox import SandboxConfig, create_sandbox_app
from segbridge.sinks.contracts import RetryPolicy
from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.support.servers import serve_in_thread

ADMIN = "receiver-admin-token"
FAST = RetryPolicy(max_attempts=8, base_seconds=0.05, cap_seconds=0.5, pause_after=3,
                   probe_seconds=0.3)


@dataclass
class Receiver:
    """A local Segment on its own port, with an archive of every accepted event."""

    url: str
    archive: Path
    client: httpx.Client
    app: Any

    def create_source(self, name: str = "Flows") -> dict[str, Any]:
        response = self.client.post("/api/sources", json={"name": name})
        assert response.status_code == 201, response.text
        source: dict[str, Any] = response.json()
        return source

    def faults(self, **settings: Any) -> None:
        response = self.client.put("/api/faults", json={"seed": 7, **settings})
        assert response.status_code == 200, response.text

    def no_faults(self) -> None:
        assert self.client.delete("/api/faults").status_code in (200, 204)

    def archived(self) -> list[dict[str, Any]]:
        """Every accepted event but the connection tests' pings."""
        if not self.archive.exists():
            return []
        events = (orjson.loads(line) for line in self.archive.read_bytes().splitlines() if line)
        return [e for e in events if e.get("userId") != "segbridge-connection-test"]

    def stats(self, source_id: str) -> dict[str, Any]:
        stats: dict[str, Any] = self.client.get(f"/api/sources/{source_id}/stats").json()
        return stats


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with simulated_receiver(tmp_path, SYSTEM_CLOCK) as started:
        yield started


@contextmanager
def simulated_receiver(folder: Path, clock: Clock) -> Iterator[Receiver]:
    """A receiver whose faults (downtime) run on ``clock``: with a SimulatedClock shared with
    the workers, "down for 20 s" passes in no real time."""
    archive = folder / "archive.ndjson"
    app = create_sandbox_app(SandboxConfig(state_path=None, archive_path=archive,
                                           admin_token=ADMIN), clock=clock)
    with serve_in_thread(app) as url, httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, trust_env=False) as client:
        yield Receiver(url, archive, client, app)
    app.state.sandbox.close()


@contextmanager
def started_workers(workers: Workers) -> Iterator[Workers]:
    workers.start()
    try:
        yield workers
    finally:
        workers.stop()


@pytest.fixture
def workers(server: Server) -> Iterator[Workers]:
    started = Workers(server.runtime, policy=FAST)
    started.start()
    yield started
    started.stop()


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def orders(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"order_id": i, "customer_id": f"c{i % 97}", "total": f"{i * 1.5:.2f}",
             "currency": "EUR", "created_at": f"2026-11-{1 + i % 27:02d}T10:00:00Z"}
            for i in range(start, start + count)]


def track_flow(name: str, path: Path, connection: str, **export: Any) -> dict[str, Any]:
    return {
        "name": name, "integration": "Shop",
        "export": {"type": "csv", "path": str(path), "key_field": "order_id", **export},
        "imports": [{"name": "Orders", "connection": connection, "call": "track",
                     "mapping": {"userId": "customer_id",
                                 "event": {"constant": "Order Completed"},
                                 "timestamp": {"field": "created_at"},
                                 "properties": {"fields": {"order_id": "order_id",
                                                           "total": "total",
                                                           "currency": "currency"}}}}],
    }


def segment_connection(server: Server, receiver: Receiver, name: str = "Segment",
                       **fields: Any) -> dict[str, Any]:
    source = receiver.create_source(name)
    response = server.api.post("/api/v1/connections", json={
        "name": name, "application": "segment",
        "settings": {"write_key": source["write_key"], "endpoint": receiver.url}, **fields})
    assert response.status_code == 201, response.text
    connection: dict[str, Any] = response.json()
    connection["source_id"] = source["id"]
    return connection


def wait_for_run(server: Server, run_id: str, timeout: float = 120) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run: dict[str, Any] = server.api.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] in ("succeeded", "completed_with_errors", "failed", "canceled"):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish in {timeout} s")


def open_errors(server: Server, flow_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every open error of the run, page by page."""
    errors: list[dict[str, Any]] = []
    for _ in range(100):
        page: list[dict[str, Any]] = server.api.get(
            f"/api/v1/flows/{flow_id}/errors",
            params={"run_id": run_id, "limit": 5000, "offset": len(errors)}).json()
        errors.extend(page)
        if len(page) < 5000:
            assert len({error["id"] for error in errors}) == len(errors), "pages overlap"
            return errors
    raise AssertionError("more than 100 pages of errors")


def assert_invariant(server: Server, flow_id: str, run: dict[str, Any]) -> None:
    """exported = sent + open errors + ignored, for the run and for each of its imports."""
    counts = run["counts"]
    errors = open_errors(server, flow_id, run["id"])
    assert counts["exported"] == counts["sent"] + len(errors) + counts["ignored"], counts
    assert counts["failed"] == len(errors)
    for name, per in counts["imports"].items():
        assert counts["exported"] == per["sent"] + per["failed"] + per["ignored"], name


@pytest.fixture
def shop(server: Server) -> dict[str, Any]:
    response = server.api.post("/api/v1/integrations", json={"name": "Shop"})
    assert response.status_code == 201
    integration: dict[str, Any] = response.json()
    return integration


@pytest.fixture
def strict_receiver(tmp_path: Path) -> Iterator[Receiver]:
    """A local Segment that refuses an unknown write key (401), as RudderStack does."""
    archive = tmp_path / "strict-archive.ndjson"
    app = create_sandbox_app(SandboxConfig(state_path=None, archive_path=archive,
                                           admin_token=ADMIN, unknown_key_mode="strict"))
    with serve_in_thread(app) as url, httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, trust_env=False) as client:
        yield Receiver(url, archive, client, app)
    app.state.sandbox.close()
