"""Webhook flows against real parts: a segbridge server on loopback (its /hooks URLs, its run
executor) and a separate local Segment receiver with an archive."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from segbridge.api.routes.hooks import close_webhooks
from segbridge.assembly import create_app
from segbridge.runtime import Runtime, first_start
from segbridge.server import quiet_http_client_logs
from tests.integration.conftest import Server, admin_token
from tests.integration.flows.conftest import receiver, segment_connection, shop, workers
from tests.integration.flows.test_flow_runs import create_flow
from tests.support.servers import serve_in_thread

__all__ = ["receiver", "shop", "workers"]  # the flows' fixtures, here too


@dataclass
class HookServer(Server):
    """A server whose app the test holds (its webhook parts are closed with it)."""

    app: Any = None


@pytest.fixture
def server(runtime: Runtime) -> Iterator[HookServer]:
    quiet_http_client_logs()
    app = create_app(runtime)
    first_start(runtime)
    token = admin_token(runtime)
    with serve_in_thread(app) as base_url, httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30,
        trust_env=False,
    ) as api:
        yield HookServer(base_url, runtime, token, api, app)
        close_webhooks(app)
    app.state.local_segment.close()


def webhook_flow(name: str, connection: str, **export: Any) -> dict[str, Any]:
    return {
        "name": name, "integration": "Shop",
        "export": {"type": "webhook", "batch": {"max_seconds": 0.2}, **export},
        "imports": [{"name": "Orders", "connection": connection, "call": "track",
                     "mapping": {"userId": "customer_id",
                                 "event": {"constant": "Order Completed"},
                                 "properties": {"fields": {"order_id": "order_id",
                                                           "total": "total"}}}}],
    }


@dataclass
class Hook:
    """A webhook flow and its URL's path."""

    flow: dict[str, Any]
    path: str
    connection: dict[str, Any]


def hook_flow(server: Server, receiver: Any, name: str = "Hooks", **export: Any) -> Hook:
    connection = segment_connection(server, receiver, name=f"Segment {name}")
    flow = create_flow(server, webhook_flow(name, connection["name"], **export))
    created = server.api.post(f"/api/v1/flows/{flow['id']}/webhook")
    assert created.status_code == 201, created.text
    return Hook(flow, urlparse(created.json()["url"]).path, connection)


def listener(server: Server, flow_id: str) -> dict[str, Any]:
    response = server.api.get(f"/api/v1/flows/{flow_id}/webhook")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def post(server: Server, path: str, content: bytes | str, content_type: str = "application/json",
         **headers: str) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", content=content, trust_env=False,
                      headers={"Content-Type": content_type, **headers}, timeout=30)


def wait_for_events(receiver: Any, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events: list[dict[str, Any]] = receiver.archived()
        if len(events) >= count:
            time.sleep(0.3)  # anything more (a duplicate) would arrive now
            events = receiver.archived()
            return events
        time.sleep(0.05)
    raise AssertionError(f"{len(receiver.archived())} events arrived, not {count}")


def wait_until_delivered(server: Server, flow_id: str, timeout: float = 30) -> dict[str, Any]:
    """The listener once no record waits and the flow has no run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = listener(server, flow_id)
        flow = server.api.get(f"/api/v1/flows/{flow_id}").json()
        if found["waiting"] == 0 and not flow.get("active_run_id"):
            return found
        time.sleep(0.05)
    raise AssertionError(f"records still wait: {listener(server, flow_id)}")
