"""Runs of large files in lanes (several producer processes): the receiver gets exactly the
calls, messageIds and record errors one producer gives, and no lane process outlives its run."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
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
    orders,
    segment_connection,
    track_flow,
    wait_for_run,
)
from tests.integration.flows.test_flow_runs import create_flow, run_flow

ROWS = 5000
LANES = LanePolicy(count=3, min_file_bytes=0, block_records=97)  # many blocks, uneven ends


def lane_pids() -> list[int]:
    """The lane processes started by this test process (they are its children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"segbridge.runs.lanes" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture
def lane_workers(server: Server) -> Iterator[Workers]:
    started = Workers(server.runtime, policy=FAST, lanes=LANES)
    started.start()
    yield started
    started.stop()


def messy_csv(path: Path, rows: int) -> Path:
    """Orders with bad records here and there: a missing id, a wrong timestamp, a line with
    too many fields, invalid UTF-8, a quoted field over two lines, and blank lines."""
    lines = [b"order_id,customer_id,total,currency,created_at"]
    for row in orders(rows):
        i = row["order_id"]
        customer = b"" if i % 211 == 5 else f"c{i % 97}".encode()
        created = b"01/11/2026" if i % 307 == 7 else row["created_at"].encode()
        line = b"%d,%s,%s,EUR,%s" % (i, customer, row["total"].encode(), created)
        if i % 401 == 9:
            line += b",extra"
        if i % 503 == 11:
            line = line.replace(b"EUR", b"E\xffR")
        if i % 601 == 13:
            line = line.replace(b",EUR,", b',"EU\nR",')
        lines.append(line)
        if i % 700 == 0:
            lines.append(b"")
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def messy_ndjson(path: Path, rows: int) -> Path:
    """Orders as JSON lines, with lines that are not JSON, not objects, or miss the id."""
    lines = []
    for row in orders(rows):
        i = row["order_id"]
        if i % 257 == 3:
            lines.append(b'{"order_id": 1,')
        elif i % 331 == 4:
            lines.append(b"[1, 2]")
        else:
            lines.append(orjson.dumps({**row, "customer_id": "" if i % 211 == 5 else
                                       row["customer_id"]}))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def ran_in_lanes(caplog: pytest.LogCaptureFixture) -> int:
    """How many runs started lanes (each says so in the log)."""
    return caplog.text.count(f"the run is produced by {LANES.count} lanes")


def errors_of(server: Server, flow_id: str, run_id: str) -> set[tuple[Any, ...]]:
    return {(e["ref"], e["step"], e["field"], e["reason"])
            for e in open_errors(server, flow_id, run_id)}


@pytest.mark.parametrize("kind", ["csv", "ndjson"])
def test_lanes_send_the_calls_and_errors_of_one_producer(
    server: Server, receiver: Receiver, shop: dict[str, Any], tmp_path: Path, kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="segbridge.runs.lanes")
    connection = segment_connection(server, receiver)
    write = messy_csv if kind == "csv" else messy_ndjson
    doc = track_flow("Orders", write(tmp_path / f"o.{kind}", ROWS), connection["name"],
                     type=kind)
    del doc["export"]["key_field"]  # messageIds from positions and content: the hard case
    flow = create_flow(server, doc)

    with_lanes = Workers(server.runtime, policy=FAST, lanes=LANES)
    with_lanes.start()
    try:
        laned = run_flow(server, flow["id"])
    finally:
        with_lanes.stop()
    assert ran_in_lanes(caplog) == 1
    assert lane_pids() == []
    one_producer = Workers(server.runtime, policy=FAST, lanes=LanePolicy(count=0))
    one_producer.start()
    try:
        single = run_flow(server, flow["id"])
    finally:
        one_producer.stop()
    assert ran_in_lanes(caplog) == 1  # not this one

    assert laned["status"] == single["status"] == "completed_with_errors"
    records = ("exported", "sent", "failed", "ignored", "imports")  # not batches nor bytes
    assert {k: laned["counts"][k] for k in records} == {k: single["counts"][k] for k in records}
    assert laned["counts"]["exported"] == ROWS
    assert_invariant(server, flow["id"], laned)
    assert errors_of(server, flow["id"], laned["id"]) == \
        errors_of(server, flow["id"], single["id"])
    assert len(errors_of(server, flow["id"], laned["id"])) == laned["counts"]["failed"] > 30
    # the second run's calls were all duplicates: same messageIds, whichever way made them
    stats = receiver.stats(connection["source_id"])
    assert stats["duplicates"] == single["counts"]["sent"]
    archived = receiver.archived()
    assert len(archived) == laned["counts"]["sent"]
    assert len({e["messageId"] for e in archived}) == len(archived)
    assert laned["progress"] == 1.0


def slow_run_in_lanes(server: Server, receiver: Receiver,
                      tmp_path: Path) -> tuple[dict[str, Any], str, list[int]]:
    """A run of a slow receiver (its lanes wait, blocked on their pipes): the flow, the run's
    id and its lanes' process ids once they all run."""
    connection = segment_connection(server, receiver, concurrency_level=1)
    flow = create_flow(server, track_flow(
        "Orders", messy_csv(tmp_path / "o.csv", ROWS), connection["name"]))
    receiver.faults(latency_ms=200)
    started = server.api.post(f"/api/v1/flows/{flow['id']}/runs").json()
    deadline = time.monotonic() + 30
    while len(pids := lane_pids()) < LANES.count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pids) == LANES.count
    return flow, started["id"], pids


def assert_no_lane_left() -> None:
    deadline = time.monotonic() + 10
    while lane_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lane_pids() == []


# A lane that dies: tests/integration/flows/test_runs_nobody_owns.py (started again).


def test_canceling_a_run_in_lanes_stops_its_lanes(
    server: Server, receiver: Receiver, lane_workers: Workers, shop: dict[str, Any],
    tmp_path: Path,
) -> None:
    flow, run_id, _pids = slow_run_in_lanes(server, receiver, tmp_path)
    assert server.api.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200

    run = wait_for_run(server, run_id)

    assert run["status"] == "canceled"
    assert run["counts"]["exported"] < ROWS
    assert_invariant(server, flow["id"], run)  # over the chunks committed before the cancel
    assert_no_lane_left()


def test_an_export_error_in_a_lane_fails_the_run_with_its_reason(
    server: Server, receiver: Receiver, lane_workers: Workers, shop: dict[str, Any],
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="segbridge.runs.lanes")
    connection = segment_connection(server, receiver)
    path = tmp_path / "o.csv"
    path.write_bytes(b"order_id,customer_\xff_id\n1,c1\n")
    flow = create_flow(server, track_flow("Orders", path, connection["name"]))

    run = run_flow(server, flow["id"])

    assert run["status"] == "failed"
    assert ran_in_lanes(caplog) == 1
    assert "The header on line 1 is not valid utf-8" in run["message"], run["message"]
    assert run["checkpoint"] == 0 and receiver.archived() == []
    assert_no_lane_left()
