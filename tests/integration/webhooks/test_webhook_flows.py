"""A webhook flow end to end: requests to its URL, committed, delivered to the local Segment
once each, with messageIds that depend only on the received record."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from segbridge.runs.message_ids import MessageIds
from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import Receiver
from tests.integration.webhooks.conftest import (
    hook_flow,
    listener,
    post,
    wait_for_events,
    wait_until_delivered,
)

pytestmark = pytest.mark.sql  # also on PostgreSQL: runs go through the job queue there


def order(i: int) -> dict[str, Any]:
    return {"order_id": i, "customer_id": f"c{i}", "total": f"{i}.50"}


def test_every_body_form_gives_its_records_and_each_is_delivered_once(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
) -> None:
    hook = hook_flow(server, receiver)
    sent = [
        (orjson.dumps(order(1)), "application/json"),
        (orjson.dumps([order(2), order(3)]), "application/json"),
        (orjson.dumps({"batch": [order(4), order(5)]}), "application/json; charset=utf-8"),
        (b"\n".join(orjson.dumps(order(i)) for i in (6, 7, 8)) + b"\n", "application/x-ndjson"),
        ("order_id=9&customer_id=c9&total=9.50", "application/x-www-form-urlencoded"),
    ]
    answers = [post(server, hook.path, body, kind) for body, kind in sent]
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    assert [a.json()["records"] for a in answers] == [1, 2, 2, 3, 1]

    events = wait_for_events(receiver, 9)
    ids = sorted(str(e["properties"]["order_id"]) for e in events)
    assert ids == [str(i) for i in range(1, 10)]  # each once (a form's values are text)
    counts = wait_until_delivered(server, hook.flow["id"])
    assert (counts["received"], counts["verified"], counts["rejected"], counts["records"]) \
        == (5, 5, 0, 9)


def test_a_records_message_id_is_its_row_and_content_whichever_run_sends_it(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
) -> None:
    hook = hook_flow(server, receiver)
    for i in range(1, 6):  # one at a time: rows 1..5 in this order
        assert post(server, hook.path, orjson.dumps(order(i))).status_code == 200
    events = wait_for_events(receiver, 5)
    ids = MessageIds(hook.flow["id"], "Orders", "track")
    expected = {i: ids.by_position(i, order(i)) for i in range(1, 6)}
    assert {e["properties"]["order_id"]: e["messageId"] for e in events} == expected


def test_records_arriving_during_a_run_wait_for_the_next_one_and_the_last_payloads_show(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
) -> None:
    hook = hook_flow(server, receiver, batch={"max_seconds": 0.05, "max_records": 7})
    for start in range(0, 60, 3):
        body = orjson.dumps([order(i) for i in range(start, start + 3)])
        assert post(server, hook.path, body).status_code == 200
    events = wait_for_events(receiver, 60)
    assert sorted(e["properties"]["order_id"] for e in events) == list(range(60))
    wait_until_delivered(server, hook.flow["id"])
    runs = server.api.get(f"/api/v1/flows/{hook.flow['id']}/runs").json()
    assert len(runs) >= 60 // 7 + 1  # at most max_records per run
    assert {run["trigger"] for run in runs} == {"webhook"}
    assert all(run["status"] == "succeeded" for run in runs)
    payloads = server.api.get(f"/api/v1/flows/{hook.flow['id']}/webhook/payloads").json()
    assert [p["payload"]["order_id"] for p in payloads] == list(range(59, 39, -1))
    assert listener(server, hook.flow["id"])["waiting"] == 0


def test_records_of_a_run_that_did_not_finish_go_again_with_the_same_message_ids(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
) -> None:
    hook = hook_flow(server, receiver)
    receiver.faults(latency_ms=1500)  # the first run is still sending when it is canceled
    for i in range(1, 4):
        assert post(server, hook.path, orjson.dumps(order(i))).status_code == 200
    flow_id = hook.flow["id"]
    first = _first_run(server, flow_id)
    assert server.api.post(f"/api/v1/runs/{first}/cancel").status_code in (200, 202)
    receiver.no_faults()
    events = wait_for_events(receiver, 3)
    wait_until_delivered(server, flow_id)
    runs = server.api.get(f"/api/v1/flows/{flow_id}/runs").json()
    assert [r["status"] for r in runs if r["id"] == first] == ["canceled"]
    assert any(r["status"] == "succeeded" for r in runs if r["id"] != first)
    ids = MessageIds(flow_id, "Orders", "track")
    assert sorted((e["properties"]["order_id"], e["messageId"]) for e in events) == \
        [(i, ids.by_position(i, order(i))) for i in range(1, 4)]


def _first_run(server: Server, flow_id: str) -> str:
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        runs = server.api.get(f"/api/v1/flows/{flow_id}/runs").json()
        if runs and runs[-1]["status"] == "running":
            return str(runs[-1]["id"])
        time.sleep(0.05)
    raise AssertionError("no run started")


def test_a_record_that_cannot_be_mapped_is_a_record_error_and_the_others_go_on(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
) -> None:
    hook = hook_flow(server, receiver)
    body = orjson.dumps([order(1), {"order_id": 2, "total": "2.50"}, order(3)])  # no user
    assert post(server, hook.path, body).status_code == 200
    events = wait_for_events(receiver, 2)
    assert sorted(e["properties"]["order_id"] for e in events) == [1, 3]
    flow_id = hook.flow["id"]
    wait_until_delivered(server, flow_id)
    runs = server.api.get(f"/api/v1/flows/{flow_id}/runs").json()
    assert [r["status"] for r in runs] == ["completed_with_errors"]
    errors = server.api.get(f"/api/v1/flows/{flow_id}/errors").json()
    assert [(e["ref"], e["step"]) for e in errors] == [("webhook record 2", "map")]
    assert post(server, hook.path, orjson.dumps(order(4))).status_code == 200
    assert sorted(e["properties"]["order_id"] for e in wait_for_events(receiver, 3)) == \
        [1, 3, 4]  # the next run sends only the new record
