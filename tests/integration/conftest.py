"""A real segbridge server (API + local Segment at /sandbox) on loopback for each test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from segbridge.accounts import service as accounts
from segbridge.api.routes.hooks import close_webhooks
from segbridge.assembly import create_app
from segbridge.core.settings import Settings
from segbridge.runtime import ADMIN_EMAIL, Runtime, first_start
from segbridge.server import quiet_http_client_logs
from tests.support.servers import serve_in_thread


@dataclass
class Server:
    """A running segbridge server and an API client signed in as its admin."""

    base_url: str
    runtime: Runtime
    token: str
    api: httpx.Client

    @property
    def sandbox_url(self) -> str:
        return f"{self.base_url}/sandbox"

    def create_source(self, name: str = "Test source") -> dict[str, Any]:
        response = self.api.post("/sandbox/api/sources", json={"name": name})
        assert response.status_code in (200, 201), response.text
        source: dict[str, Any] = response.json()
        return source

    def debugger_events(self, source_id: str, query: str = "") -> list[dict[str, Any]]:
        response = self.api.get(f"/sandbox/api/sources/{source_id}/events", params={"q": query})
        assert response.status_code == 200, response.text
        body = response.json()
        events: list[dict[str, Any]] = body["events"] if isinstance(body, dict) else body
        return events

    def segment_settings(self, write_key: str, **extra: Any) -> dict[str, Any]:
        return {"write_key": write_key, "endpoint": self.sandbox_url, **extra}

    def new_connection(self, name: str, write_key: str, **fields: Any) -> dict[str, Any]:
        body = {"name": name, "application": "segment",
                "settings": self.segment_settings(write_key), **fields}
        response = self.api.post("/api/v1/connections", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


def admin_token(runtime: Runtime, email: str = ADMIN_EMAIL) -> str:
    with runtime.db.session() as session:
        return accounts.issue_token(session, accounts.find_user(session, email), kind="api",
                                    name="tests")


@pytest.fixture
def server(runtime: Runtime) -> Iterator[Server]:
    quiet_http_client_logs()  # as `segbridge serve` does: httpx would log write keys in URLs
    app = create_app(runtime)
    first_start(runtime)
    token = admin_token(runtime)
    with serve_in_thread(app) as base_url, httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30,
        trust_env=False,
    ) as api:
        yield Server(base_url, runtime, token, api)
        close_webhooks(app)  # (a test that received a webhook started its delivery)
    app.state.local_segment.close()


@pytest.fixture
def source(server: Server) -> dict[str, Any]:
    """A source of the local Segment, with its write key (as copied from Settings > API keys)."""
    return server.create_source()


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    """The environment of a segbridge CLI process on this test's install."""
    return {"SEGBRIDGE_HOME": str(settings.home),
            "SEGBRIDGE_DATABASE_URL": settings.resolved_database_url,
            "SEGBRIDGE_FILE_ROOTS": settings.file_roots}
