"""A DuckDB connection made through the REST API (tested on save, its file checked against
the allowed roots) and a flow that sends a DuckDB table's rows to the local Segment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from segbridge.core.clock import SYSTEM_CLOCK
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    Receiver,
    segment_connection,
    shop,  # noqa: F401 - the flows tests' fixture: the integration "Shop"
    simulated_receiver,
    wait_for_run,
    workers,  # noqa: F401 - the flows tests' fixture: the run executor
)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with simulated_receiver(tmp_path, SYSTEM_CLOCK) as started:
        yield started


def warehouse(path: Path, rows: int) -> Path:
    with duckdb.connect(str(path)) as setup:
        setup.execute(f"""CREATE TABLE orders AS SELECT range AS order_id,
                          'c' || (range % 97)::VARCHAR AS customer_id,
                          (range * 1.5)::DECIMAL(12, 2) AS total,
                          TIMESTAMPTZ '2026-11-01 10:00:00+00' + INTERVAL (range % 27) DAY
                            AS created_at
                          FROM range({rows})""")
    return path


def duckdb_connection(server: Server, url: str) -> Any:
    return server.api.post("/api/v1/connections", json={
        "name": "Warehouse", "application": "database", "settings": {"url": url}})


@pytest.mark.usefixtures("workers", "shop")
def test_a_duckdb_table_flows_to_segment(server: Server, receiver: Receiver,
                                          tmp_path: Path) -> None:
    path = warehouse(tmp_path / "warehouse.duckdb", 1200)
    created = duckdb_connection(server, f"duckdb:///{path}")
    assert created.status_code == 201, created.text
    segment = segment_connection(server, receiver)
    response = server.api.post("/api/v1/flows", json={
        "name": "Orders", "integration": "Shop",
        "export": {"type": "database", "connection": "Warehouse", "key_field": "order_id",
                   "query": "SELECT * FROM orders ORDER BY order_id",
                   "cursor": {"column": "order_id"}},
        "imports": [{"name": "Orders", "connection": segment["name"], "call": "track",
                     "mapping": {"userId": "customer_id",
                                 "event": {"constant": "Order Completed"},
                                 "timestamp": {"field": "created_at"},
                                 "properties": {"fields": {"order_id": "order_id",
                                                           "total": "total"}}}}]})
    assert response.status_code == 201, response.text
    run = server.api.post(f"/api/v1/flows/{response.json()['id']}/runs")
    assert run.status_code == 202, run.text

    done = wait_for_run(server, run.json()["id"])

    assert done["status"] == "succeeded", done
    events = {e["properties"]["order_id"]: e for e in receiver.archived()}
    assert sorted(events) == list(range(1200))
    assert events[30]["properties"]["total"] == 45
    assert events[30]["originalTimestamp"] == "2026-11-04T10:00:00.000Z"


def test_a_duckdb_file_outside_the_roots_is_refused_on_save(server: Server,
                                                            tmp_path: Path) -> None:
    response = duckdb_connection(server, "duckdb:////etc/warehouse.duckdb")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"]["cause"] == "not_allowed"
    assert "/etc/warehouse.duckdb is outside the directories segbridge may read" in \
        error["message"]
