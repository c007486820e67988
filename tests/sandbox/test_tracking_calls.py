"""Each documented call shape is accepted, stamped as Segment stamps it and shown intact."""

from __future__ import annotations

import base64
import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from .conftest import Sandbox, basic

pytestmark = pytest.mark.integration

CALLS = [
    ("identify", {"userId": "user-1", "traits": {"email": "a@example.com"}}),
    ("track", {"userId": "user-1", "event": "Order Completed", "properties": {"revenue": 9.5}}),
    ("page", {"anonymousId": "anon-1", "name": "Home", "properties": {"path": "/"}}),
    ("screen", {"userId": "user-1", "name": "Settings"}),
    ("group", {"userId": "user-1", "groupId": "acme", "traits": {"plan": "pro"}}),
    ("alias", {"previousId": "anon-1", "userId": "user-1"}),
]


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.mark.parametrize(("call_type", "call"), CALLS, ids=[c[0] for c in CALLS])
def test_each_call_type_is_accepted_and_shown(
    sandbox: Sandbox, source: dict[str, Any], call_type: str, call: dict[str, Any]
) -> None:
    message_id = f"msg-{call_type}"
    response = sandbox.http.post(
        f"/v1/{call_type}",
        json={**call, "messageId": message_id},
        headers=basic(source["write_key"]),
    )
    assert response.status_code == 200
    assert response.json() == {"success": True}
    [event] = sandbox.events(source["id"])
    assert event["type"] == call_type
    assert event["message_id"] == message_id
    for name, value in call.items():
        assert event["raw"][name] == value
    assert event["raw"]["type"] == call_type
    assert event["pretty"].startswith(f"analytics.{call_type}(")


def test_pretty_view_reconstructs_the_call(sandbox: Sandbox, source: dict[str, Any]) -> None:
    sandbox.http.post(
        "/v1/identify",
        json={"userId": "user-1", "traits": {"email": "a@example.com"}},
        headers=basic(source["write_key"]),
    )
    [event] = sandbox.events(source["id"])
    assert event["pretty"] == 'analytics.identify("user-1", {\n  "email": "a@example.com"\n})'


def test_write_key_in_the_body_is_accepted_and_not_stored(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    body = {"writeKey": source["write_key"], "userId": "u", "event": "Signed Up"}
    assert sandbox.http.post("/v1/track", json=body).status_code == 200
    [event] = sandbox.events(source["id"])
    assert event["raw"]["event"] == "Signed Up"
    assert "writeKey" not in event["raw"]


def test_batch_merges_top_level_context_and_integrations(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    body = {
        "batch": [
            {"type": "identify", "userId": "u1", "context": {"ip": "10.0.0.1"}},
            {"type": "track", "userId": "u1", "event": "A", "integrations": {"Mixpanel": True}},
        ],
        "context": {"ip": "192.0.2.1", "library": {"name": "lib", "version": "1"}},
        "integrations": {"All": False},
    }
    response = sandbox.http.post("/v1/batch", json=body, headers=basic(source["write_key"]))
    assert response.status_code == 200
    track, identify = sandbox.events(source["id"])
    assert identify["raw"]["context"] == {
        "ip": "10.0.0.1",
        "library": {"name": "lib", "version": "1"},
    }
    assert identify["raw"]["integrations"] == {"All": False}
    assert track["raw"]["context"]["ip"] == "192.0.2.1"
    assert track["raw"]["integrations"] == {"All": False, "Mixpanel": True}


def test_import_is_an_alias_of_batch(sandbox: Sandbox, source: dict[str, Any]) -> None:
    body = {"batch": [{"type": "track", "userId": "u", "event": "Imported", "messageId": "imp-1"}]}
    assert (
        sandbox.http.post("/v1/import", json=body, headers=basic(source["write_key"])).status_code
        == 200
    )
    assert [e["message_id"] for e in sandbox.events(source["id"])] == ["imp-1"]


@pytest.mark.parametrize("by_header", [True, False], ids=["content-encoding", "magic-bytes"])
def test_gzip_bodies_are_accepted(
    sandbox: Sandbox, source: dict[str, Any], by_header: bool
) -> None:
    body = gzip.compress(orjson.dumps({"batch": [{"type": "track", "userId": "u", "event": "Z"}]}))
    headers = {**basic(source["write_key"]), "Content-Type": "application/json"}
    if by_header:
        headers["Content-Encoding"] = "gzip"
    assert sandbox.http.post("/v1/batch", content=body, headers=headers).status_code == 200
    assert [e["raw"]["event"] for e in sandbox.events(source["id"])] == ["Z"]


def test_text_plain_content_type_is_accepted_like_analytics_js(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    body = orjson.dumps({"writeKey": source["write_key"], "anonymousId": "a", "event": "E"})
    response = sandbox.http.post("/v1/track", content=body, headers={"Content-Type": "text/plain"})
    assert response.status_code == 200
    assert len(sandbox.events(source["id"])) == 1


def test_missing_message_id_is_assigned(sandbox: Sandbox, source: dict[str, Any]) -> None:
    sandbox.http.post(
        "/v1/track", json={"userId": "u", "event": "E"}, headers=basic(source["write_key"])
    )
    [event] = sandbox.events(source["id"])
    assert event["raw"]["messageId"] == event["message_id"]
    assert len(event["message_id"]) > 20


def test_received_at_and_timestamp_without_client_timestamp(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    before = datetime.now(UTC)
    sandbox.http.post(
        "/v1/track", json={"userId": "u", "event": "E"}, headers=basic(source["write_key"])
    )
    after = datetime.now(UTC)
    [event] = sandbox.events(source["id"])
    received = _parse(event["raw"]["receivedAt"])
    assert before - timedelta(milliseconds=1) <= received <= after
    assert event["raw"]["timestamp"] == event["raw"]["receivedAt"]
    assert "originalTimestamp" not in event["raw"]


def test_clock_skew_is_corrected(sandbox: Sandbox, source: dict[str, Any]) -> None:
    # The client's clock is a year behind: the event happened 5 s before the request left.
    body = {
        "userId": "u",
        "event": "Skewed",
        "timestamp": "2020-01-01T00:00:00.000Z",
        "sentAt": "2020-01-01T00:00:05.000Z",
    }
    sandbox.http.post("/v1/track", json=body, headers=basic(source["write_key"]))
    [event] = sandbox.events(source["id"])
    raw = event["raw"]
    assert raw["originalTimestamp"] == "2020-01-01T00:00:00.000Z"
    assert raw["sentAt"] == "2020-01-01T00:00:05.000Z"
    assert _parse(raw["receivedAt"]) - _parse(raw["timestamp"]) == timedelta(seconds=5)


def test_batch_sent_at_corrects_every_call(sandbox: Sandbox, source: dict[str, Any]) -> None:
    body = {
        "sentAt": "2030-06-01T12:00:10+02:00",
        "batch": [
            {"type": "track", "userId": "u", "event": "A", "timestamp": "2030-06-01T10:00:00Z"},
            {"type": "track", "userId": "u", "event": "B", "timestamp": "2030-06-01T10:00:09.5Z"},
        ],
    }
    sandbox.http.post("/v1/batch", json=body, headers=basic(source["write_key"]))
    b, a = sandbox.events(source["id"])
    for event, lag in ((a, 10.0), (b, 0.5)):
        raw = event["raw"]
        assert raw["sentAt"] == "2030-06-01T12:00:10+02:00"
        assert (_parse(raw["receivedAt"]) - _parse(raw["timestamp"])).total_seconds() == lag


def test_timestamp_without_sent_at_is_kept(sandbox: Sandbox, source: dict[str, Any]) -> None:
    body = {"userId": "u", "event": "Backfill", "timestamp": "2019-03-04T05:06:07.000Z"}
    sandbox.http.post("/v1/track", json=body, headers=basic(source["write_key"]))
    [event] = sandbox.events(source["id"])
    assert event["raw"]["timestamp"] == "2019-03-04T05:06:07.000Z"
    assert event["raw"]["originalTimestamp"] == "2019-03-04T05:06:07.000Z"


def test_numeric_user_ids_are_accepted(sandbox: Sandbox, source: dict[str, Any]) -> None:
    sandbox.http.post("/v1/identify", json={"userId": 42}, headers=basic(source["write_key"]))
    assert sandbox.events(source["id"])[0]["raw"]["userId"] == 42


def test_basic_auth_with_password_still_uses_the_user_name(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    token = base64.b64encode(f"{source['write_key']}:ignored".encode()).decode()
    response = sandbox.http.post(
        "/v1/identify", json={"userId": "u"}, headers={"Authorization": f"Basic {token}"}
    )
    assert response.status_code == 200
    assert sandbox.stats(source["id"])["accepted"] == 1


def test_settings_endpoint_knows_write_keys(sandbox: Sandbox, source: dict[str, Any]) -> None:
    response = sandbox.http.get(f"/v1/projects/{source['write_key']}/settings")
    assert response.status_code == 200
    assert response.json()["integrations"]["Segment.io"]["apiKey"] == source["write_key"]
    unknown = sandbox.http.get("/v1/projects/0123456789abcdef0123456789abcdef/settings")
    assert unknown.status_code == 404
    assert unknown.text == "Invalid path or write key provided."


def test_cors_preflight_is_answered(sandbox: Sandbox) -> None:
    response = sandbox.http.options("/v1/track", headers={"Origin": "http://example.com"})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
