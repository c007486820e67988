"""Parquet flows into the local Segment, through the REST API and the server's run executor:
typed values arrive as JSON, a folder's parts in order; a damaged part fails the run with
its name before a record is sent, and the next run after the part is fixed sends each row
once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from segbridge.core.clock import SYSTEM_CLOCK
from segbridge.runs.lanes import LanePolicy
from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    FAST,
    Receiver,
    assert_invariant,
    segment_connection,
    shop,  # noqa: F401 - the flows tests' fixture: the integration "Shop"
    simulated_receiver,
    track_flow,
    wait_for_run,
    workers,  # noqa: F401 - the flows tests' fixture: the run executor
)

LANES = LanePolicy(count=3, min_file_bytes=0, block_records=97)  # many blocks, uneven ends


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with simulated_receiver(tmp_path, SYSTEM_CLOCK) as started:
        yield started


def orders_table(count: int, first: int = 0) -> pa.Table:
    ids = list(range(first, first + count))
    return pa.table({
        "order_id": pa.array(ids, pa.int64()),
        "customer_id": [f"c{i % 97}" for i in ids],
        "total": pa.array([Decimal(i * 3) / 2 for i in ids], pa.decimal128(12, 2)),
        "currency": ["EUR"] * count,
        "created_at": pa.array([datetime(2026, 11, 1 + i % 27, 10, tzinfo=UTC) for i in ids],
                               pa.timestamp("ms", tz="UTC")),
        "items": pa.array([[{"sku": f"s{i}", "qty": 1 + i % 3}] for i in ids]),
    })


def parquet_flow(path: Path, connection: str, **export: Any) -> dict[str, Any]:
    doc = track_flow("Orders", path, connection)
    doc["export"] = {"type": "parquet", "path": str(path), "key_field": "order_id", **export}
    doc["imports"][0]["mapping"]["properties"]["fields"]["items"] = "items"
    return doc


def create_flow(server: Server, doc: dict[str, Any]) -> dict[str, Any]:
    response = server.api.post("/api/v1/flows", json=doc)
    assert response.status_code == 201, response.text
    flow: dict[str, Any] = response.json()
    return flow


def started(server: Server, path: str) -> dict[str, Any]:
    response = server.api.post(path)
    assert response.status_code == 202, response.text
    return wait_for_run(server, response.json()["id"])


def run_on_workers(server: Server, flow_id: str,
                   lanes: LanePolicy | None = None) -> dict[str, Any]:
    """One run of the flow, executed by workers of its own (with these lanes)."""
    own = Workers(server.runtime, policy=FAST, lanes=lanes)
    own.start()
    try:
        return started(server, f"/api/v1/flows/{flow_id}/runs")
    finally:
        own.stop()


@pytest.mark.usefixtures("workers", "shop")
def test_a_parquet_folder_delivers_every_row_once_with_its_types(
    server: Server, receiver: Receiver, tmp_path: Path) -> None:
    folder = tmp_path / "orders"
    folder.mkdir()
    pq.write_table(orders_table(1200), folder / "part-0001.parquet", row_group_size=500)
    pq.write_table(orders_table(800, first=1200), folder / "part-0002.parquet")
    connection = segment_connection(server, receiver)
    flow = create_flow(server, parquet_flow(folder, connection["name"]))

    run = started(server, f"/api/v1/flows/{flow['id']}/runs")

    assert run["status"] == "succeeded", run
    assert run["counts"]["exported"] == run["counts"]["sent"] == 2000
    assert_invariant(server, flow["id"], run)
    events = {e["properties"]["order_id"]: e for e in receiver.archived()}
    assert sorted(events) == list(range(2000))
    one = events[1201]
    assert one["userId"] == "c37" and one["properties"]["total"] == 1801.5
    assert one["properties"]["items"] == [{"sku": "s1201", "qty": 2}]
    assert one["originalTimestamp"] == "2026-11-14T10:00:00.000Z"
    assert len({e["messageId"] for e in events.values()}) == 2000


@pytest.mark.usefixtures("workers", "shop")
def test_a_damaged_part_fails_the_run_before_anything_is_sent(
    server: Server, receiver: Receiver, tmp_path: Path) -> None:
    folder = tmp_path / "orders"
    folder.mkdir()
    pq.write_table(orders_table(600), folder / "part-0001.parquet")
    damaged = folder / "part-0002.parquet"
    damaged.write_bytes(b"PAR1 this is not the rest of a parquet file")
    connection = segment_connection(server, receiver)
    flow = create_flow(server, parquet_flow(folder, connection["name"]))

    failed = started(server, f"/api/v1/flows/{flow['id']}/runs")

    assert failed["status"] == "failed", failed
    assert "part-0002.parquet is not a readable Parquet file" in str(failed), failed
    assert receiver.archived() == []  # every footer is read before the first record

    pq.write_table(orders_table(400, first=600), damaged)
    again = started(server, f"/api/v1/flows/{flow['id']}/runs")

    assert again["status"] == "succeeded", again
    ids = [e["properties"]["order_id"] for e in receiver.archived()]
    assert sorted(ids) == list(range(1000))
    assert receiver.stats(connection["source_id"])["duplicates"] == 0


@pytest.mark.usefixtures("shop")
def test_lanes_send_what_one_producer_sends(server: Server, receiver: Receiver,
                                            tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """A single Parquet file's run split into lanes (each builds its own blocks' records):
    every row once, with the messageIds of a run without lanes."""
    caplog.set_level(logging.INFO, logger="segbridge.runs.lanes")
    path = tmp_path / "orders.parquet"
    pq.write_table(orders_table(1500), path, row_group_size=400)
    connection = segment_connection(server, receiver)
    flow = create_flow(server, parquet_flow(path, connection["name"]))
    alone = run_on_workers(server, flow["id"])
    split = run_on_workers(server, flow["id"], LANES)
    assert alone["status"] == split["status"] == "succeeded", (alone, split)
    assert caplog.text.count(f"the run is produced by {LANES.count} lanes") == 1
    assert alone["counts"]["sent"] == split["counts"]["sent"] == 1500
    events = receiver.archived()  # the receiver keeps the first of each messageId
    assert sorted(e["properties"]["order_id"] for e in events) == list(range(1500))
    assert receiver.stats(connection["source_id"])["duplicates"] == 1500  # same ids again


@pytest.mark.usefixtures("shop")
def test_lanes_are_decided_by_what_reading_costs_not_the_size_on_disk(
    server: Server, receiver: Receiver, tmp_path: Path,
    caplog: pytest.LogCaptureFixture) -> None:
    """Repetitive rows compress well: the file is small on disk, but its rows cost their
    decoded size to read, so a run over it gets lanes where the same rows as CSV would."""
    caplog.set_level(logging.INFO, logger="segbridge.runs.lanes")
    path = tmp_path / "orders.parquet"
    table = orders_table(3000)
    pq.write_table(table, path, row_group_size=1000)
    on_disk = path.stat().st_size
    assert on_disk * 2 < table.nbytes
    policy = LanePolicy(count=3, min_file_bytes=(on_disk + table.nbytes) // 2,
                        block_records=97)  # more than the file's size, less than its rows'
    connection = segment_connection(server, receiver)
    flow = create_flow(server, parquet_flow(path, connection["name"]))
    run = run_on_workers(server, flow["id"], policy)

    assert run["status"] == "succeeded", run
    assert caplog.text.count(f"the run is produced by {policy.count} lanes") == 1
    assert sorted(e["properties"]["order_id"] for e in receiver.archived()) == \
        list(range(3000))


@pytest.mark.usefixtures("shop")
def test_flows_as_code_round_trip_a_parquet_export(server: Server, receiver: Receiver,
                                                   tmp_path: Path) -> None:
    path = tmp_path / "orders.parquet"
    pq.write_table(orders_table(3), path)
    connection = segment_connection(server, receiver)
    doc = parquet_flow(path, connection["name"], columns=["order_id", "customer_id"])
    created = server.api.post("/api/v1/flows/import", content=yaml.safe_dump(doc).encode(),
                              headers={"Content-Type": "application/yaml"})
    assert created.status_code == 200, created.text
    exported = yaml.safe_load(server.api.get(f"/api/v1/flows/{created.json()['id']}/yaml").text)
    assert exported["export"] == {"type": "parquet", "path": str(path),
                                  "key_field": "order_id",
                                  "columns": ["order_id", "customer_id"]}

    wrong = parquet_flow(tmp_path / "orders.parquet", connection["name"], columns="order_id")
    wrong["name"] = "Wrong"
    outside = parquet_flow(Path("/etc"), connection["name"])
    outside["name"] = "Outside"
    for broken, field in ((wrong, "export.columns"), (outside, "export.path")):
        response = server.api.post("/api/v1/flows", json=broken)
        assert response.status_code == 422, response.text
        assert field in {p["field"] for p in response.json()["error"]["details"]}


@pytest.mark.usefixtures("workers", "shop")
def test_a_row_group_damaged_mid_file_fails_the_run_and_the_next_run_repeats_no_id(
    server: Server, receiver: Receiver, tmp_path: Path,
) -> None:
    path = tmp_path / "orders.parquet"
    pq.write_table(orders_table(3000), path, row_group_size=500)
    good = path.read_bytes()
    page = pq.ParquetFile(path).metadata.row_group(4).column(1).data_page_offset
    damaged = bytearray(good)
    damaged[page + 8: page + 40] = b"\xde\xad" * 16
    path.write_bytes(bytes(damaged))
    connection = segment_connection(server, receiver)
    flow = create_flow(server, parquet_flow(path, connection["name"]))

    failed = started(server, f"/api/v1/flows/{flow['id']}/runs")

    assert failed["status"] == "failed", failed
    assert "orders.parquet cannot be read after row 2000" in str(failed), failed
    sent_before = failed["counts"]["sent"]
    assert 0 < sent_before <= 2000
    assert len(receiver.archived()) == sent_before

    path.write_bytes(good)  # exported again
    again = started(server, f"/api/v1/flows/{flow['id']}/runs")

    assert again["status"] == "succeeded", again
    assert sorted(e["properties"]["order_id"] for e in receiver.archived()) == list(range(3000))
    assert receiver.stats(connection["source_id"])["duplicates"] == sent_before


@pytest.mark.usefixtures("workers", "shop")
def test_an_uploaded_parquet_file_is_a_source(server: Server, receiver: Receiver,
                                              tmp_path: Path) -> None:
    path = tmp_path / "orders.parquet"
    pq.write_table(orders_table(250), path, row_group_size=100)
    response = server.api.post("/api/v1/uploads", params={"filename": "orders.parquet"},
                               content=path.read_bytes())
    assert response.status_code == 201, response.text
    path.unlink()  # the run reads the upload, not this file
    connection = segment_connection(server, receiver)
    doc = parquet_flow(path, connection["name"], columns=["order_id", "customer_id", "total",
                                                           "currency", "created_at", "items"])
    del doc["export"]["path"]
    doc["export"]["upload"] = response.json()["id"]
    flow = create_flow(server, doc)

    run = started(server, f"/api/v1/flows/{flow['id']}/runs")

    assert run["status"] == "succeeded", run
    assert sorted(e["properties"]["order_id"] for e in receiver.archived()) == list(range(250))


@pytest.mark.usefixtures("shop")
def test_preview_shows_parquet_rows_as_calls_and_sends_nothing(
    server: Server, receiver: Receiver, tmp_path: Path,
) -> None:
    path = tmp_path / "orders.parquet"
    pq.write_table(orders_table(10), path, row_group_size=4)
    connection = segment_connection(server, receiver)
    flow = create_flow(server, parquet_flow(path, connection["name"]))
    preview = server.api.post(f"/api/v1/flows/{flow['id']}/preview", json={"limit": 3}).json()
    assert preview["sent"] is False
    calls = [record["calls"][0]["call"] for record in preview["records"]]
    assert [call["properties"]["order_id"] for call in calls] == [0, 1, 2]
    assert calls[1]["properties"]["total"] == 1.5
    assert calls[1]["properties"]["items"] == [{"sku": "s1", "qty": 2}]
    assert receiver.archived() == []
