"""Test connection: every failure named by its cause, against real servers on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Server
from tests.support.receivers import silent_server, status_receiver
from tests.support.servers import serve_in_thread, unused_port

KEY = "abcdefghijklmnopqrstuvwxyz123456"


def test_unsaved(server: Server, endpoint: str, key: str = KEY) -> dict[str, Any]:
    response = server.api.post("/api/v1/connections/test", json={
        "application": "segment", "settings": {"write_key": key, "endpoint": endpoint}})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


test_unsaved.__test__ = False  # type: ignore[attr-defined]


def test_refused_names_the_address(server: Server) -> None:
    result = test_unsaved(server, f"http://127.0.0.1:{unused_port()}")
    assert result["ok"] is False
    assert result["cause"] == "refused"
    assert "nothing is listening" in result["message"]


def test_dns_failure_names_the_host(server: Server) -> None:
    result = test_unsaved(server, "http://segbridge-no-such-host.invalid")
    assert (result["ok"], result["cause"]) == (False, "dns")
    assert "segbridge-no-such-host.invalid" in result["message"]


def test_timeout_is_named(server: Server) -> None:
    server.runtime.connections.timeout = 0.5
    with silent_server() as url:
        result = test_unsaved(server, url)
    assert (result["ok"], result["cause"]) == (False, "timeout")


def test_tls_failure_is_named(server: Server) -> None:
    plain = server.base_url.replace("http://", "https://")
    result = test_unsaved(server, f"{plain}/sandbox")
    assert (result["ok"], result["cause"]) == (False, "tls")


def test_wrong_endpoint_is_a_404(server: Server) -> None:
    result = test_unsaved(server, f"{server.base_url}/nothing-here")
    assert (result["ok"], result["cause"], result["status"]) == (False, "wrong_endpoint", 404)


def test_a_too_short_key_is_accepted_then_found_unknown(server: Server) -> None:
    """Segment answers 200 to a short key and drops the ping; the Local Segment's settings
    endpoint then says no source has this key."""
    result = test_unsaved(server, server.sandbox_url, key="ab")
    assert (result["ok"], result["cause"], result["status"]) == (False, "key_unknown", None)


@pytest.mark.parametrize(("status", "cause", "words"), [
    (401, "write_key_rejected", "write key was rejected"),
    (403, "write_key_rejected", "write key was rejected"),
    (413, "too_large", "too large"),
    (429, "rate_limited", "rate limiting"),
    (500, "server_error", "server error"),
    (503, "server_error", "server error"),
])
def test_http_failures_are_named(server: Server, status: int, cause: str, words: str) -> None:
    with status_receiver() as (url, answers):
        answers.tracking_status = status
        result = test_unsaved(server, url)
    assert (result["ok"], result["status"], result["cause"]) == (False, status, cause)
    assert words in result["message"]


def test_strict_receivers_reject_an_unknown_key_with_401(server: Server) -> None:
    from segbridge.sandbox import SandboxConfig, create_sandbox_app

    strict = create_sandbox_app(SandboxConfig(state_path=None, unknown_key_mode="strict"))
    with serve_in_thread(strict) as url:
        result = test_unsaved(server, url)
    assert (result["ok"], result["cause"], result["status"]) == (False, "write_key_rejected", 401)


def test_any_2xx_passes_and_the_key_check_is_honest(server: Server) -> None:
    with status_receiver() as (url, answers):
        answers.tracking_status = 204
        answers.settings_status = 500
        result = test_unsaved(server, url)
        sent = answers.requests[0]
    assert result["ok"] is True and result["status"] == 204
    assert result["checks"][0]["outcome"] == "could_not_check"
    assert sent["path"] == "/v1/identify"
    assert sent["authorization"].startswith("Basic ")
    assert result["message_id"] in sent["body"].decode()


def test_a_failing_saved_connection_goes_offline_and_comes_back_by_retest(
    server: Server,
) -> None:
    with status_receiver() as (url, answers):
        created = server.api.post("/api/v1/connections", json={
            "name": "Flaky", "application": "segment",
            "settings": {"write_key": KEY, "endpoint": url}}).json()
        assert created["status"] == "online"
        answers.tracking_status = 503
        failed = server.api.post(f"/api/v1/connections/{created['id']}/test").json()
        assert failed["ok"] is False
        shown = server.api.get(f"/api/v1/connections/{created['id']}").json()
        assert shown["status"] == "offline"
        assert shown["last_test"]["ok"] is False and shown["last_test"]["cause"] == "server_error"
        assert server.runtime.connections.retest_offline() == 0
        answers.tracking_status = 200
        assert server.runtime.connections.retest_offline() == 1
    shown = server.api.get(f"/api/v1/connections/{created['id']}").json()
    assert shown["status"] == "online" and shown["last_test"]["ok"] is True
    audit = server.api.get(f"/api/v1/connections/{created['id']}/audit").json()
    assert [a["actor"] for a in audit][:2] == ["system:retest", "system:retest"]


def test_a_key_the_settings_endpoint_rejects_fails_the_test(server: Server) -> None:
    with status_receiver() as (url, answers):
        answers.settings_status = 401
        result = test_unsaved(server, url)
    assert (result["ok"], result["cause"]) == (False, "write_key_rejected")
    assert result["checks"][0]["outcome"] == "rejected"
    assert "rejects this write key" in result["message"]


def test_an_unconfirmed_key_elsewhere_is_a_warning_that_says_so(server: Server) -> None:
    with status_receiver() as (url, answers):
        answers.settings_status = 404  # as Segment answers for an unknown key
        result = test_unsaved(server, url)
    assert result["ok"] is True
    assert result["checks"][0]["outcome"] == "not_recognised"
    assert "was reached" in result["message"]
    assert "the write key could not be confirmed" in result["message"]

