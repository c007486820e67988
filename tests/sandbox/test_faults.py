"""Faults on demand: errors, latency, dropped connections, downtime; admin only."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from segbridge.core.clock import SimulatedClock

from .conftest import ADMIN_TOKEN, Sandbox, SandboxFactory, basic

pytestmark = pytest.mark.integration

CALL = {"userId": "u", "event": "E"}


@pytest.fixture
def faulty(sandbox: Sandbox) -> Iterator[Sandbox]:
    yield sandbox
    assert sandbox.admin.delete("/api/faults").status_code == 200


def _set(sandbox: Sandbox, **settings: Any) -> dict[str, Any]:
    response = sandbox.admin.put("/api/faults", json=settings)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _track(sandbox: Sandbox, source: dict[str, Any]) -> httpx.Response:
    return sandbox.http.post("/v1/track", json=CALL, headers=basic(source["write_key"]))


def test_faults_are_off_by_default(sandbox: Sandbox) -> None:
    faults = sandbox.admin.get("/api/faults").json()
    assert faults["active"] is False
    assert faults["error_500"] == faults["drop"] == 0


@pytest.mark.parametrize(
    ("field", "status"), [("error_500", 500), ("error_503", 503), ("error_429", 429)]
)
def test_error_answers(faulty: Sandbox, source: dict[str, Any], field: str, status: int) -> None:
    before = _set(faulty, **{field: 1.0, "retry_after": 7})["injected"].get(str(status), 0)
    response = _track(faulty, source)
    assert response.status_code == status
    assert response.json()["success"] is False
    if status == 500:
        assert "retry-after" not in response.headers
    else:
        assert response.headers["retry-after"] == "7"
    if status == 429:
        assert response.headers["x-ratelimit-reset"] == "7"
    assert faulty.stats(source["id"])["received"] == 0
    assert faulty.admin.get("/api/faults").json()["injected"][str(status)] == before + 1


def test_faults_never_touch_management_settings_or_pages(
    faulty: Sandbox, source: dict[str, Any]
) -> None:
    _set(faulty, error_500=1.0)
    assert faulty.admin.get("/api/sources").status_code == 200
    assert faulty.admin.get("/sources").status_code == 200
    assert faulty.http.get(f"/v1/projects/{source['write_key']}/settings").status_code == 200
    assert _track(faulty, source).status_code == 500


def test_added_latency(faulty: Sandbox, source: dict[str, Any]) -> None:
    _set(faulty, latency_ms=300)
    began = time.perf_counter()
    assert _track(faulty, source).status_code == 200
    assert time.perf_counter() - began >= 0.3


def test_dropped_connection_is_a_connection_error(
    faulty: Sandbox, source: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    _set(faulty, drop=1.0)
    with (
        caplog.at_level(logging.ERROR),
        pytest.raises(httpx.RemoteProtocolError, match="peer closed connection"),
    ):
        _track(faulty, source)
    assert faulty.stats(source["id"])["received"] == 0
    # the connection is broken the way ASGI allows (a response never finished): uvicorn
    # says so in one line, and nothing else goes wrong
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("uvicorn")]
    assert logged == ["ASGI callable returned without completing response."]
    faulty.admin.delete("/api/faults")
    assert _track(faulty, source).status_code == 200


def test_down_for_n_seconds_answers_503_then_recovers(make_sandbox: SandboxFactory) -> None:
    """Downtime runs on the receiver's clock: a simulated one lets 20 s go by at once."""
    clock = SimulatedClock()
    receiver = make_sandbox(clock=clock)
    source = receiver.new_source()
    assert _set(receiver, down_seconds=20)["down_remaining_seconds"] == 20
    response = _track(receiver, source)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "20"
    clock.advance(19.5)
    assert _track(receiver, source).headers["retry-after"] == "1"  # rounded up, never 0
    clock.advance(0.5)
    assert _track(receiver, source).status_code == 200
    faults = receiver.admin.get("/api/faults").json()
    assert faults["active"] is False
    assert faults["injected"] == {"down": 2}


def test_shares_are_deterministic_with_a_seed(faulty: Sandbox, source: dict[str, Any]) -> None:
    def run() -> list[int]:
        _set(faulty, error_500=0.3, error_429=0.2, seed=1234)
        return [_track(faulty, source).status_code for _ in range(40)]

    first = run()
    assert first == run()
    assert {200, 500, 429} == set(first)


def test_invalid_settings_list_every_problem(faulty: Sandbox) -> None:
    response = faulty.admin.put(
        "/api/faults", json={"error_500": 2, "latency_ms": -1, "retry_after": "soon", "bogus": 1}
    )
    assert response.status_code == 422
    fields = {p["field"] for p in response.json()["error"]["details"]["problems"]}
    assert fields == {"error_500", "latency_ms", "retry_after", "bogus"}
    too_much = faulty.admin.put("/api/faults", json={"error_500": 0.6, "drop": 0.6})
    assert too_much.status_code == 422
    assert faulty.admin.get("/api/faults").json()["active"] is False


def test_faults_need_admin_rights(make_sandbox: SandboxFactory) -> None:
    managed = make_sandbox(
        admin_token=None, authorize_manage=lambda r: True, authorize_admin=lambda r: False
    )
    for method in ("GET", "PUT", "DELETE"):
        response = managed.http.request(method, "/api/faults", json={"error_500": 1.0})
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
    standalone = make_sandbox(admin_token=None)
    assert standalone.http.put("/api/faults", json={"error_500": 1.0}).status_code == 403
    assert standalone.state.faults.active() is False


def test_faults_need_the_token_standalone(sandbox: Sandbox) -> None:
    assert sandbox.http.put("/api/faults", json={"error_500": 1.0}).status_code == 401
    assert sandbox.state.faults.active() is False


def test_a_page_session_does_not_grant_admin(sandbox: Sandbox) -> None:
    login = httpx.post(f"{sandbox.url}/login", data={"token": ADMIN_TOKEN})
    assert login.status_code == 303
    with httpx.Client(base_url=sandbox.url, cookies=login.cookies) as browser:
        assert browser.get("/api/sources").status_code == 200
        assert browser.get("/api/faults").status_code == 401
        assert browser.post("/api/sources", json={"name": "via cookie"}).status_code == 401
