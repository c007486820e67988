"""A run holds only the chunks it may have in flight: delivered calls are let go at once and a
chunk is closed once it holds enough record errors, so memory does not grow with the input (a
1M-row run once peaked at 0.5 GB because delivered chunks waited, with all their calls, for
their turn to commit)."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import pytest

from segbridge.apps.segment.limits import MAX_BATCH_CALLS
from segbridge.runs import producer
from segbridge.runs.batching import Item
from segbridge.runs.counts import ErrorRow
from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    Receiver,
    assert_invariant,
    orders,
    segment_connection,
    track_flow,
    wait_for_run,
    write_csv,
)

ROWS = 120_000
LEVEL = 8
CHUNKS_AHEAD = 4 + LEVEL  # plan.build_plan: chunks a run may produce ahead of its commits
ERRORS_PER_CHUNK = 1024 + 256  # producer.MAX_CHUNK_ERRORS, checked every 256 records


def live(kind: type) -> int:
    return sum(1 for thing in gc.get_objects() if type(thing) is kind)


def run_sampling(server: Server, flow_id: str, kind: type) -> tuple[dict[str, Any], int]:
    """Run the flow; return the finished run and the most objects of ``kind`` alive at once."""
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.2):
            peak = max(peak, live(kind))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        started = server.api.post(f"/api/v1/flows/{flow_id}/runs")
        assert started.status_code == 202, started.text
        run = wait_for_run(server, started.json()["id"])
    finally:
        done.set()
        sampler.join()
    return run, peak


def test_calls_held_by_a_run_stay_within_its_chunks_in_flight(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver, concurrency_level=LEVEL)
    path = write_csv(tmp_path / "orders.csv", orders(ROWS))
    doc = track_flow("Many orders", path, connection["name"])
    flow = server.api.post("/api/v1/flows", json=doc).json()

    run, peak = run_sampling(server, flow["id"], Item)

    assert run["status"] == "succeeded" and run["counts"]["sent"] == ROWS, run
    assert_invariant(server, flow["id"], run)
    assert 0 < peak <= (CHUNKS_AHEAD + 1) * MAX_BATCH_CALLS, peak


def test_a_file_of_bad_records_is_committed_a_bounded_number_of_errors_at_a_time(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(producer, "CHUNK_SECONDS", 3600.0)  # only the error count cuts chunks
    connection = segment_connection(server, receiver, concurrency_level=LEVEL)
    rows = [{**row, "customer_id": ""} for row in orders(60_000)]  # no userId: every row fails
    doc = track_flow("Bad orders", write_csv(tmp_path / "bad.csv", rows), connection["name"])
    flow = server.api.post("/api/v1/flows", json=doc).json()

    run, peak = run_sampling(server, flow["id"], ErrorRow)

    assert run["status"] == "completed_with_errors", run
    assert run["counts"]["failed"] == 60_000 and run["counts"]["sent"] == 0
    assert_invariant(server, flow["id"], run)
    assert 0 < peak <= (CHUNKS_AHEAD + 1) * ERRORS_PER_CHUNK, peak
