"""/metrics, /healthz and /readyz: a real run's metrics, who may read them, readiness on
SQLite and PostgreSQL and what makes it fail, and a worker's own health port.

The readiness and queue tests are marked ``sql``: they run on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from fastapi import FastAPI
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import text

from segbridge.api.app import create_api
from segbridge.observability.health import metrics_refusal
from segbridge.observability.serve import serve_worker_health
from segbridge.runtime import Runtime
from segbridge.storage.db import Database, alembic_config
from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import (  # noqa: F401 - fixtures
    Receiver,
    orders,
    receiver,
    shop,
    track_flow,
    wait_for_run,
    workers,
    write_csv,
)
from tests.support.databases import sqlite_url
from tests.support.servers import unused_port

TOKEN = "metrics-token-for-tests-0123456789"


def samples(metrics_text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


ELSEWHERE = ("203.0.113.5", 40000)  # a client on another machine (TEST-NET-3)


def get(runtime: Runtime, path: str, token: str | None = None,
        client: tuple[str, int] = ELSEWHERE, **extra: str) -> httpx.Response:
    """GET ``path`` from the API app, as a client at ``client`` (an ASGI call: the app sees
    that address as the peer's), with ``extra`` headers."""
    app: FastAPI = create_api(runtime)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers |= {name.replace("_", "-"): value for name, value in extra.items()}

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://segbridge") as http:
            return await http.get(path, headers=headers)

    return asyncio.run(call())


def with_token(runtime: Runtime) -> Runtime:
    settings = runtime.settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})
    return dataclasses.replace(runtime, settings=settings)


# ---- /metrics after a real run ---------------------------------------------------------------

def test_metrics_after_a_run_show_it_by_status_and_the_events_sent_to_its_connection(
    server: Server, receiver: Receiver, workers: Workers,  # noqa: F811 - fixtures
    shop: dict[str, Any], tmp_path: Path,  # noqa: F811
) -> None:
    source = receiver.create_source("Metrics")
    write_key = source["write_key"]
    created = server.api.post("/api/v1/connections", json={
        "name": "Metrics Segment", "application": "segment",
        "settings": {"write_key": write_key, "endpoint": receiver.url}})
    assert created.status_code == 201, created.text
    connection = created.json()
    flow = server.api.post("/api/v1/flows", json=track_flow(
        "Orders", write_csv(tmp_path / "orders.csv", orders(250)), connection["name"]))
    assert flow.status_code == 201, flow.text
    started = server.api.post(f"/api/v1/flows/{flow.json()['id']}/runs")
    assert started.status_code == 202, started.text
    assert wait_for_run(server, started.json()["id"])["status"] == "succeeded"

    # from loopback, no token set: allowed
    answer = httpx.get(f"{server.base_url}/metrics", trust_env=False)

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    found = samples(answer.text)
    ours = (("connection", connection["id"]),)
    assert found[("segbridge_events_sent_total", ours)] == 250
    assert found[("segbridge_segment_requests_total",
                  (("connection", connection["id"]), ("outcome", "ok")))] >= 1
    assert found[("segbridge_segment_request_seconds_count", ours)] >= 1
    assert found[("segbridge_segment_requests_in_flight", ours)] == 0
    assert found[("segbridge_runs", (("status", "succeeded"),))] == 1
    assert found[("segbridge_runs", (("status", "queued"),))] == 0
    assert found[("segbridge_runs_oldest_queued_age_seconds", ())] == 0
    assert found[("segbridge_database_up", ())] == 1
    # no secret, name or record data in any metric
    assert write_key and write_key not in answer.text
    for never in ("Metrics Segment", receiver.url, "Order Completed", "c1"):
        assert never not in answer.text
    # its own registry: prometheus' global one holds none of segbridge's metrics
    assert b"segbridge_" not in generate_latest(REGISTRY)


# ---- who may read /metrics -------------------------------------------------------------------

def test_metrics_need_the_token_when_one_is_set(runtime: Runtime) -> None:
    runtime = with_token(runtime)
    missing = get(runtime, "/metrics", client=("127.0.0.1", 40000))  # loopback needs it too
    wrong = get(runtime, "/metrics", token="not-the-token")
    right = get(runtime, "/metrics", token=TOKEN)

    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "metrics_token_required"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert "segbridge_runs" in right.text
    assert TOKEN not in right.text and TOKEN not in missing.text


def test_without_a_token_metrics_answer_loopback_clients_only(runtime: Runtime) -> None:
    refused = get(runtime, "/metrics", token=TOKEN)  # a token, but none is set
    allowed = get(runtime, "/metrics", client=("127.0.0.1", 40000))

    assert allowed.status_code == 200 and "segbridge_runs" in allowed.text
    for proxied in ({"X_Forwarded_For": "203.0.113.5"}, {"Forwarded": "for=203.0.113.5"},
                    {"X_Real_IP": "203.0.113.5"}):  # loopback, but a proxy relaying a client
        relayed = get(runtime, "/metrics", client=("127.0.0.1", 40000), **proxied)
        assert relayed.status_code == 403, proxied
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "metrics_loopback_only"
    assert "SEGBRIDGE_METRICS_TOKEN" in refused.json()["error"]["message"]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_the_rule_lets_loopback_clients_in_without_a_token(host: str) -> None:
    assert metrics_refusal(None, host, None) is None


@pytest.mark.parametrize("host", ["203.0.113.5", "10.0.0.7", "::ffff:10.0.0.7", "2001:db8::1",
                                  "0.0.0.0", "localhost", "testclient", "", None])
def test_the_rule_refuses_other_clients_without_a_token(host: str | None) -> None:
    refusal = metrics_refusal(None, host, "Bearer anything")
    assert refusal is not None and refusal.status == 403


def test_the_rule_refuses_a_loopback_peer_relaying_for_a_proxy() -> None:
    refusal = metrics_refusal(None, "127.0.0.1", None, proxied=True)
    assert refusal is not None and refusal.status == 403
    assert metrics_refusal(SecretStr(TOKEN), "127.0.0.1", f"Bearer {TOKEN}", proxied=True) is None


def test_the_rule_with_a_token_wants_it_from_loopback_too() -> None:
    token = SecretStr(TOKEN)
    loopback_without = metrics_refusal(token, "127.0.0.1", None)
    assert loopback_without is not None and loopback_without.status == 401
    assert metrics_refusal(token, "203.0.113.5", f"Bearer {TOKEN}") is None
    assert metrics_refusal(token, "203.0.113.5", f"bearer {TOKEN}") is None
    for wrong in (TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", ""):
        refusal = metrics_refusal(token, "203.0.113.5", wrong)
        assert refusal is not None and refusal.status == 401, wrong


# ---- /healthz and /readyz --------------------------------------------------------------------

@pytest.mark.sql
def test_ready_on_a_migrated_database(runtime: Runtime) -> None:
    alive = get(runtime, "/healthz")
    ready = get(runtime, "/readyz")  # no sign-in, from anywhere

    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    expected = {"database": "ok", "migrations": "ok"}
    if runtime.db.engine.dialect.name == "postgresql":
        expected["queue"] = "ok"
    assert ready.json() == {"status": "ok", "checks": expected}


def test_not_ready_naming_the_database_when_it_cannot_be_reached(runtime: Runtime) -> None:
    port = unused_port()
    closed = Database(f"postgresql+psycopg://postgres@127.0.0.1:{port}/segbridge")
    try:
        unreachable = with_token(dataclasses.replace(runtime, db=closed))
        alive = get(unreachable, "/healthz")
        ready = get(unreachable, "/readyz")
        scraped = get(unreachable, "/metrics", token=TOKEN)
    finally:
        closed.dispose()

    assert alive.status_code == 200  # alive: no database call
    assert ready.status_code == 503
    body = ready.json()
    assert body["failed"] == ["database", "migrations", "queue"]
    assert body["checks"] == {"database": "failed", "migrations": "skipped",
                              "queue": "skipped"}
    assert "127.0.0.1" not in ready.text and str(port) not in ready.text
    assert scraped.status_code == 200  # a scrape still answers: the database is down
    assert samples(scraped.text)[("segbridge_database_up", ())] == 0


def test_not_ready_naming_the_migrations_when_the_database_is_behind(
    runtime: Runtime, tmp_path: Path,
) -> None:
    url = sqlite_url(tmp_path / "old")
    behind = Database(url)
    try:
        with behind.engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, "0004")
        ready = get(dataclasses.replace(runtime, db=behind), "/readyz")
    finally:
        behind.dispose()

    assert ready.status_code == 503
    assert ready.json()["failed"] == ["migrations"]
    assert ready.json()["checks"] == {"database": "ok", "migrations": "behind"}


# ---- the job queue's metrics (PostgreSQL) ----------------------------------------------------

@pytest.mark.sql
def test_metrics_show_the_queue_depth_oldest_job_and_worker_heartbeats(
    runtime: Runtime,
) -> None:
    if runtime.db.engine.dialect.name != "postgresql":
        scraped = get(with_token(runtime), "/metrics", token=TOKEN)
        assert "segbridge_queue_jobs" not in scraped.text  # no queue with SQLite
        return
    with runtime.db.engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO procrastinate_jobs (queue_name, task_name) VALUES "
            "('metrics-test', 'segbridge.test'), ('metrics-test', 'segbridge.test')"))
        connection.execute(text("INSERT INTO procrastinate_workers DEFAULT VALUES"))
    scraped = get(with_token(runtime), "/metrics", token=TOKEN)

    assert scraped.status_code == 200, scraped.text
    found = samples(scraped.text)
    queue = (("queue", "metrics-test"),)
    assert found[("segbridge_queue_jobs", (("queue", "metrics-test"), ("status", "todo")))] == 2
    assert 0 <= found[("segbridge_queue_oldest_job_age_seconds", queue)] < 60
    assert found[("segbridge_queue_workers", ())] >= 1
    ages = [value for (name, _labels), value in found.items()
            if name == "segbridge_queue_worker_heartbeat_age_seconds"]
    assert ages and min(ages) < 60


# ---- a worker's own port ---------------------------------------------------------------------

def test_a_worker_serves_health_and_metrics_on_its_own_port(runtime: Runtime) -> None:
    health = serve_worker_health(runtime, 0)
    try:
        base = f"http://127.0.0.1:{health.port}"
        alive = httpx.get(f"{base}/healthz", trust_env=False)
        ready = httpx.get(f"{base}/readyz", trust_env=False)
        scraped = httpx.get(f"{base}/metrics", trust_env=False)
        other = httpx.get(f"{base}/api/v1/me", trust_env=False)
    finally:
        health.stop()

    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    assert scraped.status_code == 200 and "segbridge_runs" in scraped.text
    assert other.status_code == 404  # only the health routes
