"""A run holds only the chunks it may have in flight: delivered calls are let go at once, so
memory does not grow with the input (a 1M-row run once peaked at 0.5 GB because delivered
chunks waited, with all their calls, for their turn to commit)."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

from segbridge.apps.segment.limits import MAX_BATCH_CALLS
from segbridge.flows.batching import Item
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


def live_calls() -> int:
    return sum(1 for thing in gc.get_objects() if type(thing) is Item)


def test_calls_held_by_a_run_stay_within_its_chunks_in_flight(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any], tmp_path: Path,
) -> None:
    connection = segment_connection(server, receiver, concurrency_level=LEVEL)
    path = write_csv(tmp_path / "orders.csv", orders(ROWS))
    doc = track_flow("Many orders", path, connection["name"])
    flow = server.api.post("/api/v1/flows", json=doc).json()
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.25):
            peak = max(peak, live_calls())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        started = server.api.post(f"/api/v1/flows/{flow['id']}/runs")
        assert started.status_code == 202, started.text
        run = wait_for_run(server, started.json()["id"])
    finally:
        done.set()
        sampler.join()

    assert run["status"] == "succeeded" and run["counts"]["sent"] == ROWS, run
    assert_invariant(server, flow["id"], run)
    assert 0 < peak <= (CHUNKS_AHEAD + 1) * MAX_BATCH_CALLS, peak
