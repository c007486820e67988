"""A connection's rate limit (events/s, requests/s), set on the connection and enforced on
every run through it, a borrower's runs sharing its lender's budget; as the receiver saw it:
the events' receivedAt times."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    Receiver,
    orders,
    segment_connection,
    track_flow,
    wait_for_run,
    write_csv,
)
from tests.integration.flows.test_flow_runs import create_flow, run_flow


def received_seconds(receiver: Receiver) -> list[float]:
    """When each archived event arrived, in seconds since the first."""
    times = sorted(datetime.fromisoformat(e["receivedAt"].replace("Z", "+00:00")).timestamp()
                   for e in receiver.archived())
    return [t - times[0] for t in times]


def most_in_one_second(seconds: list[float]) -> int:
    """The most events that arrived within any one second (window starting at an arrival)."""
    most, low = 0, 0
    for high, at in enumerate(seconds):
        while at - seconds[low] >= 1.0:
            low += 1
        most = max(most, high - low + 1)
    return most


def test_events_arrive_no_faster_than_the_connection_s_events_per_second(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver, events_per_second=300)
    assert connection["events_per_second"] == 300.0
    flow = create_flow(server, track_flow("Paced", write_csv(tmp_path / "o.csv", orders(1200)),
                                          connection["name"]))
    run = run_flow(server, flow["id"])

    assert run["status"] == "succeeded", run
    assert run["counts"]["sent"] == 1200
    arrived = received_seconds(receiver)
    assert len(arrived) == 1200
    # a burst of one second's worth, then 300 a second: 1,200 events take 3 s at the least
    assert arrived[-1] >= 2.5, f"all events arrived within {arrived[-1]:.2f} s"
    # and no second saw more than the burst plus the refill (2 x 300)
    assert most_in_one_second(arrived) <= 600


def test_a_borrower_shares_its_lender_s_budget(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    lender = segment_connection(server, receiver, name="Lender", events_per_second=250)
    borrower = segment_connection(server, receiver, name="Borrower",
                                  borrow_concurrency_from=lender["id"])
    assert borrower["effective_rate_limit"] == {
        "requests_per_second": None, "events_per_second": 250.0, "lender_id": lender["id"]}
    one = create_flow(server, track_flow("One", write_csv(tmp_path / "1.csv", orders(500)),
                                         "Lender"))
    two = create_flow(server, track_flow(
        "Two", write_csv(tmp_path / "2.csv", orders(500, start=500)), "Borrower"))
    runs = [server.api.post(f"/api/v1/flows/{f['id']}/runs").json() for f in (one, two)]
    done = [wait_for_run(server, r["id"]) for r in runs]

    assert [r["status"] for r in done] == ["succeeded", "succeeded"]
    arrived = received_seconds(receiver)
    assert len(arrived) == 1000
    # one budget of 250/s for both flows: 1,000 events take 3 s at the least
    assert arrived[-1] >= 2.5, f"both flows' events arrived within {arrived[-1]:.2f} s"
    assert most_in_one_second(arrived) <= 500


def test_requests_per_second_paces_the_requests(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver, requests_per_second=2,
                                    events_per_second=50)
    flow = create_flow(server, track_flow("Two a second", write_csv(tmp_path / "o.csv",
                                                                    orders(200)),
                                          connection["name"]))
    run = run_flow(server, flow["id"])

    assert run["status"] == "succeeded", run
    # 50 events per request at most (one second's worth), so 4 requests, 2 a second
    batches = Counter(e["sentAt"] for e in receiver.archived())
    assert sorted(batches.values()) == [50, 50, 50, 50]
    assert received_seconds(receiver)[-1] >= 0.9


def test_removing_the_limit_lets_the_next_run_go_at_full_speed(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    source = receiver.create_source("Segment")
    settings = {"write_key": source["write_key"], "endpoint": receiver.url}
    created = server.api.post("/api/v1/connections", json={
        "name": "Segment", "application": "segment", "settings": settings,
        "events_per_second": 100})
    assert created.status_code == 201, created.text
    response = server.api.put(f"/api/v1/connections/{created.json()['id']}", json={
        "name": "Segment", "settings": settings, "events_per_second": None})
    assert response.status_code == 200, response.text
    assert response.json()["effective_rate_limit"]["events_per_second"] is None
    flow = create_flow(server, track_flow("Unpaced", write_csv(tmp_path / "o.csv",
                                                               orders(1000)), "Segment"))
    run = run_flow(server, flow["id"])
    assert run["status"] == "succeeded"
    # at 100/s, 1,000 events would go in 10 requests over 9 s; without the limit, in one
    assert len({e["sentAt"] for e in receiver.archived()}) == 1
