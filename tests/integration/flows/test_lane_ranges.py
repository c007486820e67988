"""Runs in lanes that read only their own blocks of a CSV or NDJSON file (the run's process
finds where each block starts): the receiver gets exactly the calls, messageIds and record
errors one producer gives, also after a lane is killed and started again and after a crashed
run is resumed; a file whose block starts cannot be proven is read whole by each lane, with
the same result."""

from __future__ import annotations

import logging
import os
import signal
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
    orders,
    segment_connection,
    track_flow,
    wait_for_run,
)
from tests.integration.flows.test_flow_runs import create_flow, run_flow
from tests.integration.flows.test_lanes import assert_no_lane_left, errors_of, lane_pids

ROWS = 4000
LANES = LanePolicy(count=3, min_file_bytes=0, block_records=97)
OWN_BLOCKS = "each lane reads only its blocks"
WHOLE_FILE = "each lane reads the whole file"


def quoted_csv(path: Path, rows: int, *, stray_quote: bool = False) -> Path:
    """Orders with CRLF line ends and a BOM; a quoted field over two lines on the records
    around every block boundary (positions 96, 97, 98 of each 97), quoted delimiters and
    quotes, blank and whitespace lines, lines that are not UTF-8 and lines with too many
    fields. ``stray_quote``: one field holds a quote the csv module reads literally."""
    lines = [b"order_id,customer_id,total,currency,created_at"]
    for row in orders(rows):
        i = row["order_id"]
        currency = b'"EU\r\nR"' if i % 97 in (95, 96, 0) else b'"E,""U"""' if i % 7 == 1 \
            else b"EUR"
        customer = b"" if i % 211 == 5 else row["customer_id"].encode()
        line = b"%d,%s,%s,%s,%s" % (i, customer, row["total"].encode(), currency,
                                    row["created_at"].encode())
        if i % 503 == 11:
            line = line.replace(b"c", b"\xff", 1)
        if i % 401 == 9:
            line += b",extra"
        if stray_quote and i == rows // 2:
            line = line.replace(b",EUR,", b',E"UR,')
        lines.append(line)
        if i % 300 == 7:
            lines.extend([b"", b"  ", b'""'])
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n")
    return path


def messy_ndjson(path: Path, rows: int) -> Path:
    """Orders as JSON lines with CRLF line ends, blank and whitespace lines, lines that are
    not JSON or not objects, and a last line without a line end."""
    lines = []
    for row in orders(rows):
        i = row["order_id"]
        if i % 97 == 96:
            lines.extend([b"", b" \t "])
        if i % 257 == 3:
            lines.append(b'{"order_id": 1,')
        elif i % 331 == 4:
            lines.append(b"[1, 2]")
        else:
            lines.append(orjson.dumps({**row, "customer_id": "" if i % 211 == 5 else
                                       row["customer_id"]}))
    path.write_bytes(b"\r\n".join(lines))
    return path


@pytest.fixture
def lane_workers(server: Server) -> Iterator[Workers]:
    started = Workers(server.runtime, policy=FAST, lanes=LANES)
    started.start()
    yield started
    started.stop()


def one_producer_run(server: Server, flow_id: str) -> dict[str, Any]:
    single = Workers(server.runtime, policy=FAST, lanes=LanePolicy(count=0))
    single.start()
    try:
        return run_flow(server, flow_id)
    finally:
        single.stop()


def assert_same_as_one_producer(server: Server, receiver: Receiver, flow_id: str,
                                laned: dict[str, Any], rows: int) -> None:
    """A one-producer run of the same file after the run in lanes: the same counts and
    errors, and every call it sends is one the lanes sent (same messageIds, so the
    receiver takes nothing new)."""
    assert_invariant(server, flow_id, laned)
    archived = receiver.archived()
    assert len(archived) == laned["counts"]["sent"]
    assert len({e["messageId"] for e in archived}) == len(archived)

    single = one_producer_run(server, flow_id)

    records = ("exported", "sent", "failed", "ignored", "imports")
    assert {k: laned["counts"][k] for k in records} == {k: single["counts"][k] for k in records}
    assert laned["counts"]["exported"] == rows
    assert errors_of(server, flow_id, laned["id"]) == errors_of(server, flow_id, single["id"])
    assert len(receiver.archived()) == len(archived)  # nothing new: the same messageIds
    assert single["counts"]["sent"] == laned["counts"]["sent"]


def flow_of(server: Server, receiver: Receiver, path: Path, kind: str,
            **connection: Any) -> dict[str, Any]:
    """A flow whose messageIds come from positions and content (no key field)."""
    segment = segment_connection(server, receiver, **connection)
    doc = track_flow("Orders", path, segment["name"], type=kind)
    del doc["export"]["key_field"]
    return create_flow(server, doc)


@pytest.mark.parametrize(("kind", "stray_quote", "reads"), [
    pytest.param("csv", False, OWN_BLOCKS, id="quoted CSV"),
    pytest.param("csv", True, WHOLE_FILE, id="a stray quote: whole-file lanes"),
    pytest.param("ndjson", False, OWN_BLOCKS, id="NDJSON"),
])
def test_lanes_reading_their_blocks_send_what_one_producer_sends(
    server: Server, receiver: Receiver, shop: dict[str, Any], tmp_path: Path,
    lane_workers: Workers, caplog: pytest.LogCaptureFixture, kind: str, stray_quote: bool,
    reads: str,
) -> None:
    caplog.set_level(logging.INFO, logger="segbridge.runs.lanes")
    path = quoted_csv(tmp_path / "o.csv", ROWS, stray_quote=stray_quote) if kind == "csv" \
        else messy_ndjson(tmp_path / "o.ndjson", ROWS)
    flow = flow_of(server, receiver, path, kind)

    laned = run_flow(server, flow["id"])

    assert reads in caplog.text
    assert laned["status"] == "completed_with_errors", laned
    assert laned["progress"] == 1.0
    assert_same_as_one_producer(server, receiver, flow["id"], laned, ROWS)
    assert_no_lane_left()


def started_in_lanes(server: Server, receiver: Receiver, tmp_path: Path,
                     rows: int) -> tuple[dict[str, Any], str, list[int]]:
    """A run of the quoted CSV to a slow receiver (its lanes wait on their pipes): the flow,
    the run's id and its lanes' process ids once they all run."""
    flow = flow_of(server, receiver, quoted_csv(tmp_path / "o.csv", rows), "csv",
                   concurrency_level=1)
    receiver.faults(latency_ms=200)
    started = server.api.post(f"/api/v1/flows/{flow['id']}/runs").json()
    deadline = time.monotonic() + 30
    while len(pids := lane_pids()) < LANES.count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pids) == LANES.count
    return flow, started["id"], pids


def test_a_killed_lane_reading_its_blocks_is_started_again_from_its_next_block(
    server: Server, receiver: Receiver, shop: dict[str, Any], tmp_path: Path,
    lane_workers: Workers, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="segbridge.runs.lanes")
    flow, run_id, pids = started_in_lanes(server, receiver, tmp_path, ROWS)
    os.kill(pids[1], signal.SIGKILL)
    time.sleep(1)
    receiver.no_faults()

    run = wait_for_run(server, run_id)

    assert OWN_BLOCKS in caplog.text
    assert "lane 1 ended unexpectedly (exit code -9); starting it again" in caplog.text
    assert run["status"] == "completed_with_errors", run
    assert_same_as_one_producer(server, receiver, flow["id"], run, ROWS)
    assert_no_lane_left()


def test_a_crashed_run_in_lanes_resumes_from_its_checkpoint_as_one_producer_would(
    server: Server, receiver: Receiver, shop: dict[str, Any], tmp_path: Path,
    lane_workers: Workers, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="segbridge.runs.lanes")
    flow, run_id, _pids = started_in_lanes(server, receiver, tmp_path, ROWS)
    deadline = time.monotonic() + 120
    while server.api.get(f"/api/v1/runs/{run_id}").json()["checkpoint"] == 0:
        assert time.monotonic() < deadline  # (killed once a block is committed: mid-file)
        time.sleep(0.1)
    while (crashed := server.api.get(f"/api/v1/runs/{run_id}").json())["status"] not in \
            ("succeeded", "completed_with_errors", "failed", "canceled"):
        assert time.monotonic() < deadline
        for pid in lane_pids():
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
    receiver.no_faults()
    assert crashed["status"] == "failed" and crashed["message"].startswith("crashed: lane ")
    assert 0 < crashed["checkpoint"] < ROWS  # resumed mid-file
    assert_no_lane_left()

    assert server.api.post(f"/api/v1/runs/{run_id}/resume").status_code == 202
    run = wait_for_run(server, run_id)

    assert caplog.text.count(OWN_BLOCKS) >= 2  # the resumed run's lanes too
    assert run["status"] == "completed_with_errors", run
    assert_same_as_one_producer(server, receiver, flow["id"], run, ROWS)
