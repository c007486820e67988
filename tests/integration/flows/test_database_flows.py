"""Database exports in flows: SQLite, PostgreSQL and MariaDB sources, incremental on a cursor
column; a failed run does not advance the cursor."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    Receiver,
    assert_invariant,
    segment_connection,
    wait_for_run,
)
from tests.integration.flows.test_flow_runs import create_flow

SOURCES = {
    "sqlite": None,
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
}


@pytest.fixture(params=list(SOURCES))
def source_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Engine,
                                                                                 str]]:
    url = SOURCES[request.param] or f"sqlite:///{tmp_path / 'shop.db'}"
    engine = create_engine(url)
    table = f"orders_{uuid.uuid4().hex[:10]}"
    with engine.begin() as connection:
        connection.execute(text(
            f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, customer VARCHAR(40), "
            "total NUMERIC(10,2))"))
    yield url, engine, table
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
        connection.execute(text(f"DROP TABLE IF EXISTS {table}_moved"))
    engine.dispose()


def insert(engine: Engine, table: str, ids: range) -> None:
    with engine.begin() as connection:
        connection.execute(text(f"INSERT INTO {table} (id, customer, total) VALUES "
                                "(:id, :customer, :total)"),
                           [{"id": i, "customer": f"c{i}", "total": i + 0.5} for i in ids])


def run(server: Server, flow_id: str) -> dict[str, Any]:
    response = server.api.post(f"/api/v1/flows/{flow_id}/runs")
    assert response.status_code == 202, response.text
    return wait_for_run(server, response.json()["id"])


def test_incremental_exports_send_only_what_changed(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
    source_db: tuple[str, Engine, str],
) -> None:
    url, engine, table = source_db
    segment = segment_connection(server, receiver)
    database = server.api.post("/api/v1/connections", json={
        "name": "Shop DB", "application": "database", "settings": {"url": url}})
    assert database.status_code == 201, database.text
    insert(engine, table, range(1, 101))
    flow = create_flow(server, {
        "name": "Customers", "integration": "Shop",
        "export": {"type": "database", "connection": "Shop DB", "key_field": "id",
                   "query": f"SELECT id, customer, total FROM {table}",
                   "cursor": {"column": "id"}},
        "imports": [{"name": "Identify", "connection": segment["name"], "call": "identify",
                     "mapping": {"userId": "customer",
                                 "traits": {"all_other_fields": True}}}]})

    first = run(server, flow["id"])
    assert first["status"] == "succeeded" and first["counts"]["sent"] == 100
    assert_invariant(server, flow["id"], first)

    insert(engine, table, range(101, 131))
    second = run(server, flow["id"])
    assert second["counts"]["exported"] == 30

    insert(engine, table, range(131, 141))
    with engine.begin() as connection:
        connection.execute(text(f"ALTER TABLE {table} RENAME TO {table}_moved"))
    failed = run(server, flow["id"])
    assert failed["status"] == "failed"
    assert table in failed["message"], failed  # the database's words name the missing table
    with engine.begin() as connection:
        connection.execute(text(f"ALTER TABLE {table}_moved RENAME TO {table}"))
    after_failure = run(server, flow["id"])
    assert after_failure["counts"]["exported"] == 10  # the failed run did not move the cursor

    events = receiver.archived()
    assert sorted(int(e["traits"]["id"]) for e in events) == list(range(1, 141))
    assert {e["userId"] for e in events if e["traits"]["id"] in (1, "1")} == {"c1"}
