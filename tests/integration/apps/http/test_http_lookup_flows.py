"""HTTP lookups in flows, end to end: a CSV of orders enriched from a customers API on
loopback and delivered to the local Segment receiver; each distinct customer asked for once
(requests counted at the API); no more requests in flight than the connection's concurrency
level; a 404 handled as the step's ``on_missing`` says; the preview shows the values found;
a step in the wrong form, or naming another account's connection, refused when saved; an API
that keeps failing fails the run as a source out of reach, without its key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segbridge.workers import Workers
from tests.integration.apps.http.shop_api import API_KEY, Fault, ShopState, shop_api
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (
    Receiver,
    assert_invariant,
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
    unknown_orders,
    with_lookup,
)

lane_workers = lookups.lane_workers  # the fixture, for the lanes test


@pytest.fixture
def crm() -> Iterator[tuple[str, ShopState]]:
    with shop_api(records=0, auth="api_key_header") as (url, state):
        state.customers = {f"c{n}": customer(n) for n in range(KNOWN)}
        yield url, state


def api_connection(server: Server, url: str, name: str = "CRM API",
                   **fields: Any) -> dict[str, Any]:
    response = server.api.post("/api/v1/connections", json={
        "name": name, "application": "http",
        "settings": {"base_url": url, "auth": "api_key_header", "api_key_name": "X-API-Key",
                     "api_key": API_KEY, "test_request": "GET /health"}, **fields})
    assert response.status_code == 201, response.text
    connection: dict[str, Any] = response.json()
    return connection


def lookup_flow(path: Path, segment: str, *, on_missing: str = "leave_empty",
                connection: str = "CRM API", name: str = "Orders") -> dict[str, Any]:
    doc = track_flow(name, path, segment)
    return with_lookup(doc, {"name": "customer", "connection": connection,
                             "request": {"path": "/customers/{id}"},
                             "params": {"id": "customer_id"}, "result": "data",
                             "on_missing": on_missing})


def orders_flow(server: Server, receiver: Receiver, url: str, csv: Path, *,
                concurrency: int | None = None, **options: Any) -> dict[str, Any]:
    """A flow of the orders in ``csv``, each enriched with what the customers API at ``url``
    answers (a new HTTP API connection 'CRM API', at most ``concurrency`` requests at once
    when given), sent to a new Segment connection."""
    segment = segment_connection(server, receiver)
    api_connection(server, url, **({} if concurrency is None else
                                    {"concurrency_level": concurrency}))
    flow: dict[str, Any] = create_flow(server, lookup_flow(csv, segment["name"], **options))
    return flow


def customer_requests(state: ShopState) -> list[str]:
    return [path for path in state.paths() if path.startswith("/customers/")]


def test_orders_are_enriched_from_the_api_each_customer_asked_once_within_the_concurrency(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
    crm: tuple[str, ShopState], tmp_path: Path,
) -> None:
    url, state = crm
    state.customer_delay = 0.02
    flow = orders_flow(server, receiver, url, write_csv(tmp_path / "o.csv", orders(600)),
                       concurrency=3)

    run = run_flow(server, flow["id"])

    assert run["status"] == "succeeded", run
    assert run["counts"]["sent"] == 600
    assert_invariant(server, flow["id"], run)
    events = receiver.archived()
    assert len(events) == 600
    assert_enriched(events)
    asked = customer_requests(state)
    assert sorted(asked) == sorted(f"/customers/c{n}" for n in range(97))  # once each
    assert state.peak_in_flight == 3


@pytest.mark.parametrize(("on_missing", "status"), [("fail_record", "completed_with_errors"),
                                                    ("ignore_record", "succeeded")])
def test_customers_the_api_does_not_know_fail_or_are_ignored(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
    crm: tuple[str, ShopState], tmp_path: Path, on_missing: str, status: str,
) -> None:
    url, _state = crm
    rows = orders(200)
    flow = orders_flow(server, receiver, url, write_csv(tmp_path / "o.csv", rows),
                       on_missing=on_missing)

    run = run_flow(server, flow["id"])

    assert run["status"] == status, run
    assert_unknown_handled(server, receiver, flow["id"], run, rows, on_missing)


def test_the_preview_shows_what_the_api_found(
    server: Server, receiver: Receiver, shop: dict[str, Any], crm: tuple[str, ShopState],
    tmp_path: Path,
) -> None:
    url, _state = crm
    rows = orders(100)[88:91]  # c88, c89 exist; c90 does not
    flow = orders_flow(server, receiver, url, write_csv(tmp_path / "o.csv", rows))

    preview = server.api.post(f"/api/v1/flows/{flow['id']}/preview", json={"limit": 10})

    assert preview.status_code == 200, preview.text
    records = preview.json()["records"]
    assert [r["data"].get("customer") for r in records] == [
        customer(88), customer(89), None]
    assert receiver.archived() == []


def test_a_step_in_the_other_connection_s_form_is_refused_when_saved(
    server: Server, receiver: Receiver, shop: dict[str, Any], crm: tuple[str, ShopState],
    tmp_path: Path,
) -> None:
    url, _state = crm
    segment = segment_connection(server, receiver)
    api_connection(server, url)
    (tmp_path / "crm.db").touch()
    database = server.api.post("/api/v1/connections", json={
        "name": "CRM DB", "application": "database",
        "settings": {"url": f"sqlite:///{tmp_path / 'crm.db'}"}})
    assert database.status_code == 201, database.text
    csv = write_csv(tmp_path / "o.csv", orders(5))
    sql_to_api = lookup_flow(csv, segment["name"], name="SQL to API")
    step = sql_to_api["steps"][0]["lookup"]
    del step["request"], step["result"]
    step.update(query="select plan from customers where id = :id")
    request_to_db = lookup_flow(csv, segment["name"], connection="CRM DB", name="HTTP to DB")

    for document, field, says in (
            (sql_to_api, "steps.0.lookup.query", "a lookup through 'CRM API' (HTTP API) "
             "takes request and result, not query; write request"),
            (request_to_db, "steps.0.lookup.request", "a lookup through 'CRM DB' (Database) "
             "takes query and key_column, not request; write query")):
        saved = server.api.post("/api/v1/flows", json=document)
        assert saved.status_code == 422, saved.text
        problems = {p["field"]: p["message"] for p in saved.json()["error"]["details"]}
        assert problems[field].startswith(says), problems


def test_another_account_s_api_connection_cannot_be_used(
    server: Server, receiver: Receiver, shop: dict[str, Any], crm: tuple[str, ShopState],
    tmp_path: Path,
) -> None:
    url, state = crm
    victim = api_connection(server, url)
    attacker = other_account_api(server)
    source = receiver.create_source("Mallory")
    csv = write_csv(tmp_path / "o.csv", orders(20))
    with attacker:
        assert attacker.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
        made = attacker.post("/api/v1/connections", json={
            "name": "Mine", "application": "segment",
            "settings": {"write_key": source["write_key"], "endpoint": receiver.url}})
        assert made.status_code == 201, made.text
        by_name = lookup_flow(csv, "Mine")
        by_id = lookup_flow(csv, "Mine", connection=victim["id"], name="By id")
        for document in (by_name, by_id):
            saved = attacker.post("/api/v1/flows", json=document)
            assert saved.status_code == 422, saved.text
            assert "in your account" in saved.text
            preview = attacker.post("/api/v1/flows/x/preview",
                                    json={"flow": document, "limit": 3})
            assert preview.status_code in (404, 422), preview.text
    assert customer_requests(state) == []
    assert receiver.archived() == []


def test_an_api_that_keeps_failing_fails_the_run_as_a_source_out_of_reach(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
    crm: tuple[str, ShopState], tmp_path: Path,
) -> None:
    url, state = crm
    state.faults["/customers/c0"] = [Fault(503)] * 100
    flow = orders_flow(server, receiver, url, write_csv(tmp_path / "o.csv", orders(3)))

    run = run_flow(server, flow["id"])

    assert run["status"] == "failed", run
    assert run["message"].startswith("source unavailable: The lookup 'customer' failed "
                                     "(tried 5 times): The lookup's API did not answer: "), run
    assert "/customers/c0" in run["message"]
    assert API_KEY not in str(run)
    assert receiver.archived() == []


def test_lanes_ask_the_api_themselves_within_the_concurrency_and_send_the_same(
    server: Server, receiver: Receiver, lane_workers: Workers, shop: dict[str, Any],
    crm: tuple[str, ShopState], tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="segbridge.runs.lanes")
    url, state = crm
    state.customer_delay = 0.01
    rows = orders(2000)
    unknown = unknown_orders(rows)
    flow = orders_flow(server, receiver, url, write_csv(tmp_path / "o.csv", rows),
                       concurrency=2, on_missing="fail_record")

    run = run_flow(server, flow["id"])

    assert "the run is produced by 3 lanes" in caplog.text
    assert run["status"] == "completed_with_errors", run
    assert run["counts"]["failed"] == len(unknown)
    assert_invariant(server, flow["id"], run)
    events = receiver.archived()
    assert len(events) == len(rows) - len(unknown)
    assert_plans(events)
    # each lane keeps its own cache and its own threads: a key at most once per lane
    asked = customer_requests(state)
    assert set(asked) == {f"/customers/c{n}" for n in range(97)}
    assert len(asked) <= 3 * 97
    assert state.peak_in_flight <= 3 * 2
    assert API_KEY not in caplog.text
