"""Mounted at /sandbox in a FastAPI server with its own access checks, as segbridge does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from segbridge.sandbox import SandboxConfig, create_sandbox_app, ensure_default_source

from .conftest import SandboxFactory, basic, serve

pytestmark = pytest.mark.integration


def _is(role: str) -> Any:
    def check(request: Request) -> bool:
        return request.headers.get("x-role") in (role, "admin")

    return check


@pytest.fixture(scope="module")
def mounted() -> Iterator[tuple[str, dict[str, Any]]]:
    sandbox = create_sandbox_app(
        SandboxConfig(state_path=None),
        authorize_manage=_is("manager"),
        authorize_admin=_is("admin"),
    )
    source = ensure_default_source(sandbox).to_json()
    server = FastAPI()
    server.mount("/sandbox", sandbox)
    with serve(server) as url:
        yield url, source
    sandbox.state.sandbox.close()


def test_tracking_and_management_under_the_prefix(mounted: tuple[str, dict[str, Any]]) -> None:
    url, source = mounted
    with httpx.Client(base_url=f"{url}/sandbox") as client:
        call = {"userId": "u", "event": "Mounted", "messageId": "mounted-1"}
        assert (
            client.post("/v1/track", json=call, headers=basic(source["write_key"])).status_code
            == 200
        )
        manager = {"x-role": "manager"}
        assert client.get("/api/sources", headers={"x-role": "nobody"}).status_code == 403
        events = client.get(f"/api/sources/{source['id']}/events", headers=manager).json()["events"]
        assert [e["message_id"] for e in events] == ["mounted-1"]
        assert client.get("/api/faults", headers=manager).status_code == 403
        assert client.get("/api/faults", headers={"x-role": "admin"}).status_code == 200


def test_pages_and_settings_know_the_prefix(mounted: tuple[str, dict[str, Any]]) -> None:
    url, source = mounted
    with httpx.Client(base_url=f"{url}/sandbox", headers={"x-role": "manager"}) as client:
        page = client.get("/sources").text
        assert 'href="/sandbox/static/sandbox.css"' in page
        assert f'href="/sandbox/sources/{source["id"]}/debugger"' in page
        debugger = client.get(f"/sources/{source['id']}/debugger").text
        assert f'data-stream-url="/sandbox/api/sources/{source["id"]}/events/stream"' in debugger
        assert client.get("/static/debugger.js").status_code == 200
        settings = client.get(f"/v1/projects/{source['write_key']}/settings").json()
        assert settings["integrations"]["Segment.io"]["apiHost"].endswith("/sandbox/v1")


def test_dropped_connections_work_when_mounted(mounted: tuple[str, dict[str, Any]]) -> None:
    url, source = mounted
    with httpx.Client(base_url=f"{url}/sandbox", headers={"x-role": "admin"}) as client:
        assert client.put("/api/faults", json={"drop": 1.0}).status_code == 200
        try:
            with pytest.raises(httpx.RemoteProtocolError):
                client.post(
                    "/v1/track",
                    json={"userId": "u", "event": "E"},
                    headers=basic(source["write_key"]),
                )
        finally:
            assert client.delete("/api/faults").status_code == 200


def test_a_host_passes_its_own_csrf_token(make_sandbox: SandboxFactory) -> None:
    """``csrf_token`` gives the host's token; the verified token reaches its check as a header."""
    seen: list[str | None] = []

    def manage(request: Request) -> bool:
        seen.append(request.headers.get("x-csrf-token"))
        return request.cookies.get("host_session") == "alice"

    def csrf(request: Request) -> str | None:
        session = request.cookies.get("host_session")
        return f"token-of-{session}" if session else None

    hosted = make_sandbox(admin_token=None, authorize_manage=manage, csrf_token=csrf)
    with httpx.Client(base_url=hosted.url, cookies={"host_session": "alice"}) as browser:
        assert 'name="csrf_token" value="token-of-alice"' in browser.get("/sources").text
        refused = browser.post("/sources", data={"name": "Forged", "csrf_token": "token-of-bob"})
        assert refused.status_code == 403
        assert "This form has expired" in refused.text
        made = browser.post("/sources", data={"name": "Hosted", "csrf_token": "token-of-alice"})
        assert made.status_code == 303
    assert seen[-1] == "token-of-alice"
    assert [s.name for s in hosted.state.store.list()] == ["Hosted"]
