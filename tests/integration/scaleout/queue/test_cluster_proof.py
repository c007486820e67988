"""The issue's proof, with real parts: three ``segbridge worker`` processes and 20 flows on
one shared connection limit (a lender at level 5 and a borrower), into one receiver that
counts the requests in flight.

- Every record arrives once, the receiver never sees more than 5 requests at once although
  12 runs execute at the same time, and every worker executes runs.
- SIGKILL one worker while it executes runs: the other two finish them, nothing is lost.
- A storm of 429s (Retry-After 2 s) slows every worker: the receiver, behind a log of every
  request (``RequestLog``: which worker sent it, when, and the answer), sees no request from
  any worker during a pause, and each worker waits out 429s that other workers received.

Executed once, taken over from its checkpoint, given back on SIGTERM, a schedule firing once:
``test_worker_queue.py``, one run at a time."""

from __future__ import annotations

import gzip
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from segbridge.concurrency.cluster_models import GovernorPool
from segbridge.core.clock import SYSTEM_CLOCK
from segbridge.sandbox import SandboxConfig, create_sandbox_app
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    ADMIN,
    Receiver,
    orders,
    segment_connection,
    track_flow,
    wait_for_run,
    write_csv,
)
from tests.integration.flows.test_faults import delivered_once
from tests.integration.flows.test_flow_runs import create_flow
from tests.integration.scaleout.queue.conftest import Workers
from tests.integration.scaleout.queue.test_worker_queue import (
    pid_of,
    run_row,
    start_run,
    until,
)
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.postgres
FLOWS, ROWS, LEVEL = 20, 150, 5
RETRY_AFTER = 2  # seconds, in the storm's 429s
SETTLING = 0.5  # seconds after a 429 for requests already on their way to arrive


def twenty_flows(server: Server, receiver: Receiver, data: Path) -> list[dict[str, Any]]:
    """Half the flows on the lender, half on a connection that borrows its limit."""
    lender = segment_connection(server, receiver, name="Lender", concurrency_level=LEVEL)
    segment_connection(server, receiver, name="Borrower", borrow_concurrency_from=lender["id"])
    return [create_flow(server, track_flow(
        f"Orders {i}", write_csv(data / f"{i}.csv", orders(ROWS, start=i * 1000)),
        "Lender" if i % 2 else "Borrower")) for i in range(FLOWS)]


def three_workers(workers: Workers) -> list[Any]:
    started = [workers.start("--concurrency", "4") for _ in range(3)]
    for worker in started:
        workers.wait_ready(worker)
    return started


def test_three_workers_keep_one_limit_and_deliver_every_record_once(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], data: Path,
) -> None:
    flows = twenty_flows(server, receiver, data)
    started = three_workers(workers)
    receiver.faults(latency_ms=150)  # each request holds its slot a while: runs overlap
    run_ids = [start_run(server, flow["id"]) for flow in flows]

    runs = [wait_for_run(server, run_id, timeout=120) for run_id in run_ids]

    assert [run["status"] for run in runs] == ["succeeded"] * FLOWS
    delivered_once(receiver, FLOWS * ROWS)
    peak = receiver.client.get("/api/receiver").json()["peak_in_flight"]
    assert 2 <= peak <= LEVEL, f"{peak} requests in flight at once for a level of {LEVEL}"
    owners = {pid_of(run_row(server, run_id).owner) for run_id in run_ids}
    assert owners == {worker.pid for worker in started}  # every worker executed runs


def test_a_worker_killed_mid_run_loses_nothing_and_the_others_finish_its_runs(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], data: Path,
) -> None:
    """SIGKILL one of the three workers while it executes runs on the shared limit: the other
    two take its runs over and finish them; every record once, still at most 5 in flight."""
    flows = twenty_flows(server, receiver, data)
    started = three_workers(workers)
    victim = started[0]
    receiver.faults(latency_ms=1000)  # 20 one-request runs through 5 slots: seconds of work
    run_ids = [start_run(server, flow["id"]) for flow in flows]

    def two_executing_on_victim() -> list[str]:
        found = [run_id for run_id in run_ids if (row := run_row(server, run_id)).status
                 == "running" and pid_of(row.owner) == victim.pid]
        return found if len(found) >= 2 else []

    theirs = until(two_executing_on_victim, 30, "two runs executing on the first worker")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    runs = [wait_for_run(server, run_id, timeout=120) for run_id in run_ids]

    assert [run["status"] for run in runs] == ["succeeded"] * FLOWS
    delivered_once(receiver, FLOWS * ROWS)
    assert receiver.client.get("/api/receiver").json()["peak_in_flight"] <= LEVEL
    taken = [run_id for run_id in theirs if pid_of(run_row(server, run_id).owner) != victim.pid]
    assert taken, "the killed worker finished its runs before it died: nothing taken over"
    for run_id in taken:
        assert pid_of(run_row(server, run_id).owner) in {w.pid for w in started[1:]}
        message = server.api.get(f"/api/v1/runs/{run_id}").json()["message"]
        assert f"taken over from {socket.gethostname()}:{victim.pid}" in message


def _lender_id(server: Server) -> str:
    connections = server.api.get("/api/v1/connections").json()
    return next(str(c["id"]) for c in connections if c["name"] == "Lender")


@dataclass(frozen=True)
class Request:
    """One tracking request as the receiver saw it (seconds since the epoch, as run rows)."""

    arrived: float
    answered: float
    status: int
    order_id: int | None  # of its first call: names the flow, hence the run and its worker


@dataclass
class RequestLog:
    """In front of the local Segment: every tracking request's arrival, answer and status."""

    app: Any
    requests: list[Request] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        arrived = time.time()
        messages = [await receive()]
        while messages[-1]["type"] == "http.request" and messages[-1].get("more_body"):
            messages.append(await receive())
        status = [0]

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        body = b"".join(message.get("body", b"") for message in messages)
        await self.app(scope, replay, watch)
        self.requests.append(Request(arrived, time.time(), status[0], _first_order(body)))


def _first_order(body: bytes) -> int | None:
    """The order id of a batch's first call; None for anything else (a ping; a body cut off
    by a client that went away)."""
    try:
        payload = orjson.loads(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)
    except (orjson.JSONDecodeError, OSError, EOFError):
        return None
    calls = payload.get("batch") if isinstance(payload, dict) else None
    order_id = calls[0].get("properties", {}).get("order_id") if calls else None
    return int(order_id) if order_id is not None else None


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Receiver, RequestLog]]:
    """The flows' receiver (``receiver``), served behind a ``RequestLog``."""
    archive = tmp_path / "archive.ndjson"
    app = create_sandbox_app(SandboxConfig(state_path=None, archive_path=archive,
                                           admin_token=ADMIN), clock=SYSTEM_CLOCK)
    log = RequestLog(app)
    with serve_in_thread(log) as url, httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN}"},
            trust_env=False) as client:
        yield Receiver(url, archive, client, app), log
    app.state.sandbox.close()


def test_a_429_storm_slows_every_worker_and_loses_nothing(
    server: Server, watched: tuple[Receiver, RequestLog], workers: Workers,
    shop: dict[str, Any], data: Path,
) -> None:
    """Every request is on the lender's pool (the borrower shares it). After any worker's 429
    (Retry-After 2 s), no worker sends anything until the pause ends: the receiver sees
    silence, and each worker waits out pauses it did not cause."""
    receiver, log = watched
    flows = twenty_flows(server, receiver, data)
    started = three_workers(workers)
    receiver.faults(error_429=0.3, retry_after=RETRY_AFTER, latency_ms=50)
    run_ids = [start_run(server, flow["id"]) for flow in flows]

    runs = [wait_for_run(server, run_id, timeout=300) for run_id in run_ids]

    assert [run["status"] for run in runs] == ["succeeded"] * FLOWS
    delivered_once(receiver, FLOWS * ROWS)
    assert receiver.client.get("/api/receiver").json()["peak_in_flight"] <= LEVEL
    owners = [pid_of(run_row(server, run_id).owner) for run_id in run_ids]
    sent = sent_by_worker(log.requests, owners)
    spans: dict[int | None, list[tuple[float, float]]] = {}  # each worker's runs, start to end
    for owner, run in zip(owners, runs, strict=True):
        spans.setdefault(owner, []).append((epoch(run["started_at"]), epoch(run["finished_at"])))
    assert set(sent) == {worker.pid for worker in started}  # every worker sent requests
    storm = [request for request in log.requests if request.status == 429]
    assert len(storm) >= 3, f"only {len(storm)} 429s: no storm"
    for pid, requests in sent.items():
        inside = [round(r.arrived - q.answered, 2) for r in requests for q in storm
                  if q.answered + SETTLING < r.arrived < q.answered + RETRY_AFTER]
        assert not inside, (f"worker {pid} sent requests during a 429's pause "
                            f"(seconds after the 429: {inside})")
        mine = {id(request) for request in requests}
        waited = [q for q in storm if id(q) not in mine and any(  # a run of its own went on
            start < q.arrived and q.answered + RETRY_AFTER < end for start, end in spans[pid])]
        assert waited, f"worker {pid} never had to wait out another worker's 429"
    with server.runtime.db.session() as session:  # the pause lives in the pool's one row
        lender = session.get(GovernorPool, _lender_id(server))
        assert lender is not None and lender.paused_until is not None


def epoch(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


def sent_by_worker(requests: list[Request], owners: list[int | None]) -> dict[int, list[Request]]:
    """The tracking requests of the flows' runs, by the pid of the worker that executed each
    run (flow i sends orders i*1000...)."""
    by_worker: dict[int, list[Request]] = {}
    for request in requests:
        if request.order_id is None:  # (a connection test's ping)
            continue
        owner = owners[request.order_id // 1000]
        assert owner is not None, "a run executed by no worker of this machine"
        by_worker.setdefault(owner, []).append(request)
    return by_worker
