"""An HTTP export in a flow, end to end: a segbridge server runs the flow, reads a paginated
API on loopback (bearer token, page numbers, a 429 on the way) and every record reaches the
local Segment receiver once; an incremental flow sends only what changed since its last
successful run."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from typing import Any

from segbridge.workers import Workers
from tests.integration.apps.http.shop_api import TOKEN, Fault, shop_api
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    Receiver,
    assert_invariant,
    segment_connection,
    wait_for_run,
)
from tests.integration.flows.test_flow_runs import create_flow, run_flow


def http_connection(server: Server, base_url: str, **fields: Any) -> None:
    response = server.api.post("/api/v1/connections", json={
        "name": "Shop API", "application": "http",
        "settings": {"base_url": base_url, "auth": "bearer", "token": TOKEN,
                     "test_request": "GET /health"}, **fields})
    assert response.status_code == 201, response.text
    assert TOKEN not in response.text


def identify_flow(export: dict[str, Any], segment: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "Customers from the API", "integration": "Shop",
        "export": {"type": "http", "connection": "Shop API", "key_field": "id", **export},
        "imports": [{"name": "Identify", "connection": segment["name"], "call": "identify",
                     "mapping": {"userId": "email", "traits": {"all_other_fields": True}}}]}


def test_an_http_flow_delivers_every_record_of_every_page_once(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
) -> None:
    segment = segment_connection(server, receiver)
    with shop_api(records=57, auth="bearer") as (url, state):
        http_connection(server, url)
        state.faults["/pages"] = [Fault(), Fault(429, {"Retry-After": "1"})]
        flow = create_flow(server, identify_flow(
            {"path": "/pages", "records": "data.items",
             "pagination": {"type": "page", "size": 10, "size_param": "per_page"}}, segment))
        done = run_flow(server, flow["id"])
    assert done["status"] == "succeeded", done
    assert done["counts"]["exported"] == done["counts"]["sent"] == 57
    assert_invariant(server, flow["id"], done)
    events = receiver.archived()
    assert sorted(int(e["traits"]["id"]) for e in events) == list(range(1, 58))
    assert {e["userId"] for e in events if e["traits"]["id"] in (1, "1")} == {"u1@example.com"}


def test_the_connection_s_requests_per_second_spaces_the_pages(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
) -> None:
    segment = segment_connection(server, receiver)
    with shop_api(records=60, auth="bearer") as (url, state):
        http_connection(server, url, requests_per_second=4)
        flow = create_flow(server, identify_flow(
            {"path": "/pages", "records": "data.items",
             "pagination": {"type": "page", "size": 10, "size_param": "per_page"}}, segment))
        done = run_flow(server, flow["id"])
        pages = [when for path, _query, when in state.timed_requests if path == "/pages"]
    assert done["status"] == "succeeded", done
    assert done["counts"]["sent"] == 60
    assert len(pages) == 7  # six pages and the empty one that ends the walk
    gaps = [later - earlier for earlier, later in itertools.pairwise(pages)]
    assert min(gaps) >= 0.2, gaps  # 4 a second: a quarter second apart (less a little)


def test_an_incremental_http_flow_sends_only_what_changed(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
) -> None:
    segment = segment_connection(server, receiver)
    with shop_api(records=12, auth="bearer") as (url, state):
        http_connection(server, url)
        flow = create_flow(server, identify_flow(
            {"path": "/offset", "records": "results",
             "pagination": {"type": "offset", "size": 5},
             "since": {"field": "updated_at", "param": "updated_since"}}, segment))
        first = run_flow(server, flow["id"])
        state.add(3, datetime.now(UTC))  # changed after the first run
        time.sleep(1.1)  # a window ends on a whole second
        second = run_flow(server, flow["id"])
        third = run_flow(server, flow["id"])
        since = [query.get("updated_since") for path, query in state.requests
                 if path == "/offset"]
    assert [r["counts"]["exported"] for r in (first, second, third)] == [12, 3, 0]
    assert since[0] is None and since[-1] is not None
    events = receiver.archived()
    assert sorted(int(e["traits"]["id"]) for e in events) == list(range(1, 16))


def test_a_page_that_keeps_failing_fails_the_run_naming_it_and_a_resumed_run_continues_there(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
) -> None:
    segment = segment_connection(server, receiver)
    with shop_api(records=30, auth="bearer") as (url, state):
        http_connection(server, url)
        # page 5 comes late: the chunk of pages 1-4 closes (after a second) and is committed,
        # so the run's checkpoint is past them when page 6 fails twice
        state.faults["/cursor"] = [Fault()] * 4 + [Fault(delay=1.5)] + [Fault(500, delay=1.0)] * 2
        flow = create_flow(server, identify_flow(
            {"path": "/cursor", "records": "items", "max_attempts": 2,
             "pagination": {"type": "cursor", "cursor_path": "meta.next_cursor",
                            "cursor_param": "cursor"}}, segment))
        failed = run_flow(server, flow["id"])
        asked_before = len(state.requests)
        resumed = server.api.post(f"/api/v1/runs/{failed['id']}/resume")
        assert resumed.status_code == 202, resumed.text
        again = wait_for_run(server, failed["id"])
        asked_after = [query.get("cursor") for _path, query in state.requests[asked_before:]]
    assert failed["status"] == "failed", failed
    assert f"Page 6 of the export ({url}/cursor?cursor=20) failed 2 times" in failed["message"]
    assert "resume the run once the source answers" in failed["message"]
    assert TOKEN not in failed["message"]
    assert failed["checkpoint"] == 16, failed  # pages 1-4, of 4 records each
    assert again["status"] == "succeeded", again
    assert asked_after[0] == "16", asked_after  # it went on at page 5, not at the first
    events = receiver.archived()
    assert sorted({int(e["traits"]["id"]) for e in events}) == list(range(1, 31))
    assert len({e["messageId"] for e in events}) == 30  # any sent again: the same messageIds
