"""Lookup steps in flows against real databases (SQLite, PostgreSQL, MariaDB): a CSV of
orders enriched with each customer's row, delivered to a local Segment receiver; what
``on_missing`` does; each distinct key asked about once (queries counted where they run);
another account's connection refused; the preview shows the looked-up fields; a database
that cannot be reached fails the run with a clear message and no password."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from segbridge.apps.registry import default_registry
from segbridge.core.errors import FieldProblem
from segbridge.flows.definition import lookup_connection_ids, resolved_steps
from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    Receiver,
    assert_invariant,
    open_errors,
    orders,
    segment_connection,
    track_flow,
    write_csv,
)
from tests.integration.flows.test_flow_runs import create_flow, run_flow
from tests.integration.test_access import other_account_api
from tests.support import lookups
from tests.support.lookups import (
    KNOWN,
    assert_enriched,
    assert_plans,
    assert_unknown_handled,
    customer,
    plan_of,
    unknown_orders,
    with_lookup,
)

lane_workers = lookups.lane_workers  # the fixture, for the lanes test

DATABASES = {
    "sqlite": None,
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
}
@pytest.fixture
def customers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A customers table (id VARCHAR, plan, country) in the database named by the param."""
    kind = getattr(request, "param", "sqlite")
    url = DATABASES[kind] or f"sqlite:///{tmp_path / 'crm.db'}"
    engine = create_engine(url)
    table = f"customers_{uuid.uuid4().hex[:10]}"
    with engine.begin() as connection:
        connection.execute(text(f"CREATE TABLE {table} (id VARCHAR(20) PRIMARY KEY, "
                                "plan VARCHAR(20), country VARCHAR(2))"))
        connection.execute(text(f"INSERT INTO {table} VALUES (:id, :plan, :country)"),
                           [customer(i) for i in range(KNOWN)])
    yield url, table
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


def database_connection(server: Server, url: str, name: str = "CRM") -> dict[str, Any]:
    response = server.api.post("/api/v1/connections", json={
        "name": name, "application": "database", "settings": {"url": url}})
    assert response.status_code == 201, response.text
    connection: dict[str, Any] = response.json()
    return connection


def lookup_flow(path: Path, segment: str, table: str, *, batched: bool = True,
                on_missing: str = "leave_empty", connection: str = "CRM",
                name: str = "Orders") -> dict[str, Any]:
    doc = track_flow(name, path, segment)
    if batched:
        lookup = {"query": f"select id, plan, country from {table} where id in :customer",
                  "key_column": "id"}
    else:
        lookup = {"query": f"select plan, country from {table} where id = :customer"}
    return with_lookup(doc, {"name": "customer", "connection": connection,
                             "params": {"customer": "customer_id"},
                             "on_missing": on_missing, **lookup})


def orders_flow(server: Server, receiver: Receiver, customers: tuple[str, str], csv: Path,
                **options: Any) -> dict[str, Any]:
    """A flow of the orders in ``csv``, each enriched with its customer's row (a new Database
    connection 'CRM' on the ``customers`` table), sent to a new Segment connection."""
    url, table = customers
    segment = segment_connection(server, receiver)
    database_connection(server, url)
    flow: dict[str, Any] = create_flow(server, lookup_flow(csv, segment["name"], table,
                                                           **options))
    return flow


@pytest.mark.parametrize("customers", list(DATABASES), indirect=True)
def test_orders_are_enriched_with_their_customers_row(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
    customers: tuple[str, str], tmp_path: Path,
) -> None:
    flow = orders_flow(server, receiver, customers, write_csv(tmp_path / "orders.csv",
                                                              orders(500)))

    run = run_flow(server, flow["id"])

    assert run["status"] == "succeeded", run
    assert run["counts"]["sent"] == 500
    assert_invariant(server, flow["id"], run)
    events = receiver.archived()
    assert len(events) == 500
    assert_enriched(events)  # leave_empty: an unknown customer's events have no plan


@pytest.mark.parametrize(("on_missing", "status"), [("fail_record", "completed_with_errors"),
                                                    ("ignore_record", "succeeded")])
def test_orders_of_unknown_customers_fail_or_are_ignored(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
    customers: tuple[str, str], tmp_path: Path, on_missing: str, status: str,
) -> None:
    rows = orders(300)
    flow = orders_flow(server, receiver, customers, write_csv(tmp_path / "o.csv", rows),
                       on_missing=on_missing)

    run = run_flow(server, flow["id"])

    assert run["status"] == status, run
    assert_invariant(server, flow["id"], run)
    first = assert_unknown_handled(server, receiver, flow["id"], run, rows, on_missing)
    if on_missing == "fail_record":
        assert first is not None and first["field"] == "customer_id"
        assert run["counts"]["ignored"] == 0


def orders_sync_flow(server: Server, receiver: Receiver, customers: tuple[str, str],
                     csv: Path, sync: str, on_missing: str) -> dict[str, Any]:
    """``orders_flow`` whose import sends ``sync`` records (all, or only changed ones)."""
    url, table = customers
    segment = segment_connection(server, receiver)
    database_connection(server, url)
    doc = lookup_flow(csv, segment["name"], table, on_missing=on_missing)
    doc["imports"][0]["sync"] = sync
    flow: dict[str, Any] = create_flow(server, doc)
    return flow


@pytest.mark.parametrize("on_missing", ["fail_record", "ignore_record"])
@pytest.mark.parametrize("sync", ["all", "changed"])
def test_unknown_customers_fail_or_are_ignored_in_every_batch_whatever_the_sync(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
    customers: tuple[str, str], tmp_path: Path, sync: str, on_missing: str,
) -> None:
    # 3000 orders: 3 lookup batches of 1000, compared (sync: changed) 2048 at a time; every
    # unknown customer's order is failed or ignored, none sent without its plan
    rows = orders(3000)
    unknown = unknown_orders(rows)
    flow = orders_sync_flow(server, receiver, customers, write_csv(tmp_path / "o.csv", rows),
                            sync, on_missing)

    run = run_flow(server, flow["id"])

    assert_invariant(server, flow["id"], run)
    assert_unknown_handled(server, receiver, flow["id"], run, rows, on_missing)
    assert_plans(receiver.archived())
    if on_missing == "fail_record":
        assert sorted(error["position"] for error in open_errors(server, flow["id"], run["id"])) \
            == sorted(int(row["order_id"]) for row in unknown)

    again = run_flow(server, flow["id"])  # the same orders: a diffed import sends none again

    assert again["counts"]["sent"] == (0 if sync == "changed" else len(rows) - len(unknown))
    assert again["counts"]["failed"] == (len(unknown) if on_missing == "fail_record" else 0)
    assert_plans(receiver.archived())


def test_lanes_ignore_unknown_customers_in_a_diff_sync(
    server: Server, receiver: Receiver, lane_workers: Workers, shop: dict[str, Any],
    customers: tuple[str, str], tmp_path: Path,
) -> None:
    rows = orders(3000)
    flow = orders_sync_flow(server, receiver, customers, write_csv(tmp_path / "o.csv", rows),
                            "changed", "ignore_record")

    run = run_flow(server, flow["id"])

    assert run["status"] == "succeeded", run
    assert_invariant(server, flow["id"], run)
    assert_unknown_handled(server, receiver, flow["id"], run, rows, "ignore_record")
    assert_plans(receiver.archived())


@pytest.mark.parametrize(("batched", "queries"), [(True, 1), (False, 97)])
def test_each_distinct_customer_is_asked_about_once(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
    customers: tuple[str, str], tmp_path: Path, batched: bool, queries: int,
) -> None:
    _url, table = customers
    flow = orders_flow(server, receiver, customers, write_csv(tmp_path / "o.csv", orders(3000)),
                       batched=batched)
    asked: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if table in statement:
            asked.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        run = run_flow(server, flow["id"])
    finally:
        event.remove(Engine, "before_cursor_execute", count)

    assert run["status"] == "succeeded" and run["counts"]["sent"] == 3000
    # 3000 orders, 97 distinct customers: one IN (...) query for the first batch's 97 keys
    # (the next batches are all cache hits), or one query per distinct key
    assert len(asked) == queries


def test_another_accounts_connection_cannot_be_used_for_a_lookup(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
    customers: tuple[str, str], tmp_path: Path,
) -> None:
    url, table = customers
    victim = database_connection(server, url)
    attacker = other_account_api(server)
    source = receiver.create_source("Mallory")
    csv = write_csv(tmp_path / "o.csv", orders(20))
    with attacker:
        assert attacker.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
        made = attacker.post("/api/v1/connections", json={
            "name": "Mine", "application": "segment",
            "settings": {"write_key": source["write_key"], "endpoint": receiver.url}})
        assert made.status_code == 201, made.text
        doc = lookup_flow(csv, "Mine", table, on_missing="fail_record")
        by_id = lookup_flow(csv, "Mine", table, connection=victim["id"], name="By id")
        by_id["steps"][0]["lookup"]["connection_id"] = victim["id"]
        for document in (doc, by_id):
            preview = attacker.post("/api/v1/flows/x/preview",
                                    json={"flow": document, "limit": 3})
            assert preview.status_code in (404, 422), preview.text
            assert "in your account" in preview.text or "No flow" in preview.text
            saved = attacker.post("/api/v1/flows", json=document)
            assert saved.status_code == 422, saved.text  # refused when saved
            assert "in your account" in saved.text
            assert "steps.0.lookup.connection" in saved.text
        assert attacker.get("/api/v1/flows").json() == []
    assert receiver.archived() == []


def test_a_connection_a_lookup_uses_cannot_be_deleted_from_under_the_flow(
    server: Server, receiver: Receiver, shop: dict[str, Any], customers: tuple[str, str],
    tmp_path: Path,
) -> None:
    url, table = customers
    crm = database_connection(server, url)
    segment = segment_connection(server, receiver)
    flow = create_flow(server, lookup_flow(write_csv(tmp_path / "o.csv", orders(5)),
                                           segment["name"], table))
    shown = server.api.get(f"/api/v1/connections/{crm['id']}").json()
    assert shown["used_by"]["flows"] == [{"id": flow["id"], "name": "Orders"}]
    refused = server.api.delete(f"/api/v1/connections/{crm['id']}")
    assert refused.status_code == 409, refused.text
    assert "Orders" in refused.text
    assert server.api.get(f"/api/v1/connections/{crm['id']}").status_code == 200


def wait_run(api: Any, run_id: str) -> dict[str, Any]:
    import time

    for _ in range(600):
        run: dict[str, Any] = api.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] in ("succeeded", "completed_with_errors", "failed", "canceled"):
            return run
        time.sleep(0.1)
    raise AssertionError("the run did not end")


def test_a_lookup_step_names_its_connection_problems_at_the_step(
    server: Server, receiver: Receiver, customers: tuple[str, str],
) -> None:
    url, table = customers
    mine = database_connection(server, url)
    segment = segment_connection(server, receiver)
    with server.runtime.db.session() as session:
        from segbridge.storage.models import Account

        others = [a.id for a in session.query(Account).all()]
    attacker = other_account_api(server)
    attacker.close()
    with server.runtime.db.session() as session:
        from segbridge.storage.models import Account

        other = next(a.id for a in session.query(Account).all() if a.id not in others)
        own = others[0]
        query = f"select id, plan from {table} where id in :c"

        def check(account: str, connection: str, **more: Any) -> list[tuple[str, str]]:
            problems: list[FieldProblem] = []
            steps = [{"filter": {"expression": "true"}},
                     {"lookup": {"name": "customer", "connection": connection, "query": query,
                                 "params": {"c": "customer_id"}, "key_column": "id", **more}}]
            resolved_steps(session, account, default_registry(), steps, problems)
            return [(p.field, p.message) for p in problems]

        assert check(own, "CRM") == []
        assert check(other, "CRM") == [("steps.1.lookup.connection", "no connection named "
                                        "'CRM' in your account; create it first (Resources > "
                                        "Connections)")]
        assert check(other, mine["id"]) == [("steps.1.lookup.connection", "no connection "
                                             f"named '{mine['id']}' in your account; create "
                                             "it first (Resources > Connections)")]
        assert check(own, segment["name"]) == [(
            "steps.1.lookup.connection", f"'{segment['name']}' is a segment connection, which "
            "cannot answer lookups; choose a connection of: Database or HTTP API")]
        assert check(own, "CRM", query=f"select * from {table} where id = :c") == [(
            "steps.1.lookup.query", "a batched lookup (key_column) reads many keys at once: "
                                    "write 'where <column> in :c'")]
        resolved = resolved_steps(session, own, default_registry(), [
            {"lookup": {"name": "customer", "connection": "CRM", "query": query,
                        "params": {"c": "customer_id"}, "key_column": "id"}}], [])
        assert lookup_connection_ids({"steps": resolved}) == {mine["id"]}


def test_the_preview_shows_the_looked_up_fields(
    server: Server, receiver: Receiver, shop: dict[str, Any], customers: tuple[str, str],
    tmp_path: Path,
) -> None:
    rows = orders(100)[88:92]  # c88, c89 exist; c90, c91 do not
    flow = orders_flow(server, receiver, customers, write_csv(tmp_path / "o.csv", rows),
                       on_missing="fail_record")

    preview = server.api.post(f"/api/v1/flows/{flow['id']}/preview", json={"limit": 10})

    assert preview.status_code == 200, preview.text
    records = preview.json()["records"]
    assert [r["data"].get("customer") for r in records] == [
        customer(88), customer(89), None, None]
    assert records[0]["calls"][0]["call"]["properties"]["plan"] == plan_of(88)
    assert [r["errors"][0]["reason"] for r in records[2:]] == [
        "the lookup 'customer' found nothing for customer_id = 'c90'",
        "the lookup 'customer' found nothing for customer_id = 'c91'"]
    assert receiver.archived() == []


def test_a_lookup_database_that_cannot_be_reached_fails_the_run_without_its_password(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
    tmp_path: Path,
) -> None:
    segment = segment_connection(server, receiver)
    password = "s3cret-Lookup-pw"  # a test's secret, searched for below
    crm = database_connection(server, str(DATABASES["postgresql"]))
    edited = server.api.put(f"/api/v1/connections/{crm['id']}", json={
        "name": "CRM", "settings": {"url": DATABASES["postgresql"], "password": password}})
    assert edited.status_code == 200, edited.text  # trust auth: any password will do
    with server.runtime.db.session() as session:  # then the database goes away
        from segbridge.storage.models import Connection

        row = session.get(Connection, crm["id"])
        assert row is not None
        row.settings = {**row.settings, "url": "postgresql+psycopg://postgres@127.0.0.1:1/crm"}
    flow = create_flow(server, lookup_flow(write_csv(tmp_path / "o.csv", orders(10)),
                                           segment["name"], "customers"))

    run = run_flow(server, flow["id"])

    assert run["status"] == "failed", run
    # a source out of reach: the run can be resumed once the database answers
    assert run["message"].startswith(
        "source unavailable: The lookup 'customer' failed (tried 5 times): "), run
    assert "resume the run once the source answers" in run["message"]
    assert "reached" in run["message"] or "refused" in run["message"], run
    assert password not in str(run)
    assert receiver.archived() == []


@pytest.mark.parametrize("customers", ["sqlite", "postgresql"], indirect=True)
def test_lanes_open_their_own_lookups_and_send_what_one_producer_would(
    server: Server, receiver: Receiver, lane_workers: Workers, shop: dict[str, Any],
    customers: tuple[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="segbridge.runs.lanes")
    rows = orders(3000)
    unknown = unknown_orders(rows)
    flow = orders_flow(server, receiver, customers, write_csv(tmp_path / "o.csv", rows),
                       on_missing="fail_record")

    run = run_flow(server, flow["id"])

    assert "the run is produced by 3 lanes" in caplog.text
    assert run["status"] == "completed_with_errors", run
    assert run["counts"]["failed"] == len(unknown)
    assert_invariant(server, flow["id"], run)
    errors = open_errors(server, flow["id"], run["id"])
    assert sorted(error["position"] for error in errors) == \
        sorted(int(row["order_id"]) for row in unknown)
    events = receiver.archived()
    assert len(events) == len(rows) - len(unknown)
    assert_plans(events)


def test_a_retried_record_error_is_looked_up_again(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
    customers: tuple[str, str], tmp_path: Path,
) -> None:
    from tests.integration.flows.conftest import wait_for_run

    url, table = customers
    rows = orders(100)[88:92]  # c90 and c91 are not customers yet
    flow = orders_flow(server, receiver, customers, write_csv(tmp_path / "o.csv", rows),
                       on_missing="fail_record")
    run = run_flow(server, flow["id"])
    errors = open_errors(server, flow["id"], run["id"])
    assert len(errors) == 2
    engine = create_engine(url)
    with engine.begin() as connection:  # the customers arrive in the CRM
        connection.execute(text(f"INSERT INTO {table} VALUES ('c90', 'team', 'DE'), "
                                "('c91', 'free', 'DE')"))
    engine.dispose()

    retry = server.api.post(f"/api/v1/flows/{flow['id']}/errors/retry",
                            json={"error_ids": [error["id"] for error in errors]})
    assert retry.status_code == 202, retry.text
    retried = wait_for_run(server, retry.json()["id"])

    assert retried["status"] == "succeeded" and retried["counts"]["sent"] == 2, retried
    plans = {one["userId"]: one["properties"]["plan"] for one in receiver.archived()}
    assert (plans["c90"], plans["c91"]) == ("team", "free")
