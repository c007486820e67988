"""The issue's proof, with real parts: three ``segbridge worker`` processes and 20 flows on
one shared connection limit (a lender at level 5 and a borrower), into one receiver that
counts the requests in flight. Every record arrives once, the receiver never sees more than 5
requests at once although 12 runs execute at the same time, every worker executes runs; and
a storm of 429s slows all of them and still loses nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from segbridge.concurrency.cluster_models import GovernorPool
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
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
from tests.integration.scaleout.queue.test_worker_queue import pid_of, run_row, start_run

pytestmark = pytest.mark.postgres
FLOWS, ROWS, LEVEL = 20, 150, 5


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


def test_a_429_storm_slows_every_worker_and_loses_nothing(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], data: Path,
) -> None:
    flows = twenty_flows(server, receiver, data)
    three_workers(workers)
    receiver.faults(error_429=0.5, retry_after=1, latency_ms=50)
    run_ids = [start_run(server, flow["id"]) for flow in flows]

    runs = [wait_for_run(server, run_id, timeout=180) for run_id in run_ids]

    assert [run["status"] for run in runs] == ["succeeded"] * FLOWS
    delivered_once(receiver, FLOWS * ROWS)
    assert receiver.client.get("/api/receiver").json()["peak_in_flight"] <= LEVEL
    with server.runtime.db.session() as session:
        lender = session.get(GovernorPool, _lender_id(server))
        assert lender is not None
        # the back-off lives in the pool's one row that every worker reads before sending
        assert lender.paused_until is not None, "no 429 paused the shared pool"


def _lender_id(server: Server) -> str:
    connections = server.api.get("/api/v1/connections").json()
    return next(str(c["id"]) for c in connections if c["name"] == "Lender")
