"""Hostile records: a record nested far too deep, or far too large, is one record error with a
reason that names the setting, while every other record of the file (of the same chunk too)
reaches the receiver; one producer and lanes give the same errors; a preview shows the error
in place (never a 500); and what a record error keeps of such a record stays small."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from segbridge.runs.lanes import LanePolicy
from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    FAST,
    Receiver,
    assert_invariant,
    open_errors,
    segment_connection,
)
from tests.integration.flows.test_flow_runs import create_flow, run_flow

GOOD = 40
DEEP_AT = 20  # the position of the hostile record, in the middle of the only chunk
LANES = LanePolicy(count=3, min_file_bytes=0, block_records=7)
DEPTH_REASON = ("the record is nested 300 levels deep; at most 64 are allowed "
                "(SEGBRIDGE_RECORD_MAX_DEPTH)")
SIZE_REASON = "at most 1,048,576 bytes are allowed (SEGBRIDGE_RECORD_MAX_BYTES)"


def nested(levels: int) -> Any:
    """A value ``levels`` objects deep."""
    value: Any = "bottom"
    for _ in range(levels):
        value = {"inner": value}
    return value


def order(i: int, details: Any = None) -> dict[str, Any]:
    return {"order_id": i, "customer_id": f"c{i}", "details": details or {"color": "red"}}


def hostile_orders() -> list[dict[str, Any]]:
    """GOOD good orders and, at DEEP_AT, one nested 300 levels deep (its details: 299)."""
    rows = [order(i) for i in range(GOOD)]
    rows.insert(DEEP_AT, order(999, nested(299)))
    return rows


def file_body(kind: str, rows: list[dict[str, Any]]) -> bytes:
    # (orjson cannot write 300 levels: the hostile file is written by hand)
    texts = [json_text(row) for row in rows]
    if kind == "ndjson":
        return "\n".join(texts).encode() + b"\n"
    return ("[\n" + ",\n".join(texts) + "\n]\n").encode()


def json_text(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json_text(k)}: {json_text(v)}" for k, v in value.items()) + "}"
    return orjson.dumps(value).decode()


def upload(server: Server, name: str, body: bytes) -> str:
    response = server.api.post("/api/v1/uploads", params={"filename": name}, content=body)
    assert response.status_code == 201, response.text
    upload_id: str = response.json()["id"]
    return upload_id


def flow_doc(name: str, kind: str, upload_id: str, connection: str) -> dict[str, Any]:
    """A track call per order, its details mapped into the properties; messageIds from
    positions and content (no key field: the record is hashed whole)."""
    return {
        "name": name, "integration": "Shop",
        "export": {"type": kind, "upload": upload_id},
        "imports": [{"name": "Orders", "connection": connection, "call": "track",
                     "mapping": {"userId": "customer_id",
                                 "event": {"constant": "Order Completed"},
                                 "properties": {"fields": {"order_id": "order_id",
                                                           "details": "details"}}}}],
    }


@pytest.fixture
def one_producer(server: Server) -> Iterator[Workers]:
    started = Workers(server.runtime, policy=FAST, lanes=LanePolicy(count=0))
    started.start()
    yield started
    started.stop()


def run_with(server: Server, flow_id: str, lanes: LanePolicy) -> dict[str, Any]:
    workers = Workers(server.runtime, policy=FAST, lanes=lanes)
    workers.start()
    try:
        return run_flow(server, flow_id)
    finally:
        workers.stop()


@pytest.mark.parametrize("kind", ["ndjson", "json"])
def test_a_record_nested_300_deep_is_one_record_error_and_the_rest_of_its_chunk_is_sent(
    server: Server, receiver: Receiver, shop: dict[str, Any], kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="segbridge.runs.lanes")
    connection = segment_connection(server, receiver)
    upload_id = upload(server, f"orders.{kind}", file_body(kind, hostile_orders()))
    flow = create_flow(server, flow_doc("Orders", kind, upload_id, connection["name"]))

    single = run_with(server, flow["id"], LanePolicy(count=0))
    laned = run_with(server, flow["id"], LANES)

    assert caplog.text.count(f"the run is produced by {LANES.count} lanes") == 1
    ref = f"line {DEEP_AT + 1}" if kind == "ndjson" else f"item {DEEP_AT + 1}"
    for run in (single, laned):
        assert run["status"] == "completed_with_errors", run
        assert run["counts"]["exported"] == GOOD + 1
        assert run["counts"]["sent"] == GOOD and run["counts"]["failed"] == 1
        assert_invariant(server, flow["id"], run)
        [error] = open_errors(server, flow["id"], run["id"])
        assert (error["ref"], error["step"]) == (ref, "export")
        assert error["reason"] == f"{ref}: {DEPTH_REASON}"
        assert error["raw"].replace(" ", "").startswith(
            '{"order_id":999,"customer_id":"c999","details":{"inner":{"inner":')
        assert len(error["raw"]) <= 2100
    # every good order reached the receiver (twice: the second run's are duplicates)
    archived = receiver.archived()
    assert sorted({e["properties"]["order_id"] for e in archived}) == list(range(GOOD))
    assert {e["properties"]["details"]["color"] for e in archived} == {"red"}


def test_a_json_item_of_20_mb_is_one_small_record_error(
    server: Server, receiver: Receiver, shop: dict[str, Any], one_producer: Workers,
) -> None:
    connection = segment_connection(server, receiver)
    blob = b"x" * (20 * 1024 * 1024)
    big = b'{"order_id": 1, "customer_id": "c1", "details": {"blob": "' + blob + b'"}}'
    body = b"[" + orjson.dumps(order(0)) + b",\n" + big + b",\n" + orjson.dumps(order(2)) + b"]"
    upload_id = upload(server, "orders.json", body)
    flow = create_flow(server, flow_doc("Orders", "json", upload_id, connection["name"]))

    run = run_flow(server, flow["id"])

    assert run["status"] == "completed_with_errors", run
    assert (run["counts"]["sent"], run["counts"]["failed"]) == (2, 1)
    errors = server.api.get(f"/api/v1/flows/{flow['id']}/errors", params={"run_id": run["id"]})
    assert errors.status_code == 200
    assert len(errors.content) < 8 * 1024  # the errors of a 20 MB item: a few KB
    [error] = errors.json()
    assert error["reason"] == f"item 2: the record is {len(big):,} bytes; {SIZE_REASON}"
    assert error["data"] is None
    assert error["raw"].startswith('{"order_id": 1, "customer_id": "c1", "details": {"blob": "xxx')
    assert error["raw"].endswith(f"x ... ({len(big):,} bytes)")
    assert len(error["raw"]) <= 2100
    assert sorted(e["properties"]["order_id"] for e in receiver.archived()) == [0, 2]


@pytest.mark.parametrize("kind", ["ndjson", "json"])
def test_preview_shows_a_deep_record_as_its_error_not_a_server_error(
    server: Server, receiver: Receiver, shop: dict[str, Any], kind: str,
) -> None:
    connection = segment_connection(server, receiver)
    upload_id = upload(server, f"orders.{kind}", file_body(kind, hostile_orders()))
    doc = flow_doc("Orders", kind, upload_id, connection["name"])

    response = server.api.post("/api/v1/flows/new/preview", json={"flow": doc, "limit": 30})

    assert response.status_code == 200, response.text
    records = response.json()["records"]
    assert len(records) == 30
    deep = records[DEEP_AT]
    assert deep["data"] is None and deep["calls"] == []
    assert deep["errors"][0]["step"] == "export"
    assert deep["errors"][0]["reason"].endswith(DEPTH_REASON)
    assert all(len(r["calls"]) == 1 for i, r in enumerate(records) if i != DEEP_AT)
    assert receiver.archived() == []


def test_preview_of_a_file_that_is_not_a_json_array_is_a_clear_422(
    server: Server, receiver: Receiver, shop: dict[str, Any],
) -> None:
    connection = segment_connection(server, receiver)
    upload_id = upload(server, "orders.json", b'{"order_id": 1}')
    doc = flow_doc("Orders", "json", upload_id, connection["name"])

    response = server.api.post("/api/v1/flows/new/preview", json={"flow": doc, "limit": 5})

    assert response.status_code == 422, response.text
    [problem] = response.json()["error"]["details"]
    assert problem["field"] == "export"
    assert "a JSON export needs a top-level array of objects" in problem["message"]
