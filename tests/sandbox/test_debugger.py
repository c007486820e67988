"""The Debugger: the last N events newest first, search, live stream, counters."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import orjson
import pytest

from .conftest import ADMIN_TOKEN, Sandbox, SandboxFactory, basic

pytestmark = pytest.mark.integration


@pytest.fixture
def sandbox(make_sandbox: SandboxFactory) -> Sandbox:
    """A receiver per test: messageIds are deduplicated across the whole workspace, and these
    tests reuse the same ids."""
    return make_sandbox()


def _send(sandbox: Sandbox, source: dict[str, Any], count: int, start: int = 0) -> None:
    batch = [
        {"type": "track", "userId": f"user-{i}", "event": "E", "messageId": f"msg-{i}"}
        for i in range(start, start + count)
    ]
    response = sandbox.http.post(
        "/v1/batch", json={"batch": batch}, headers=basic(source["write_key"])
    )
    assert response.status_code == 200


def test_keeps_only_the_last_500_newest_first(sandbox: Sandbox, source: dict[str, Any]) -> None:
    _send(sandbox, source, 2_000)
    _send(sandbox, source, 300, start=2_000)
    events = sandbox.events(source["id"])
    assert len(events) == 500
    assert [e["message_id"] for e in events] == [f"msg-{i}" for i in range(2_299, 1_799, -1)]
    assert sandbox.stats(source["id"])["accepted"] == 2_300
    assert sandbox.stats(source["id"])["in_debugger"] == 500


def test_limit_and_search(sandbox: Sandbox, source: dict[str, Any]) -> None:
    _send(sandbox, source, 30)
    assert [e["message_id"] for e in sandbox.events(source["id"], limit=2)] == ["msg-29", "msg-28"]
    found = sandbox.events(source["id"], q="USER-17")
    assert [e["message_id"] for e in found] == ["msg-17"]
    assert [e["message_id"] for e in sandbox.events(source["id"], q="msg-2", limit=3)] == [
        "msg-29",
        "msg-28",
        "msg-27",
    ]
    assert sandbox.events(source["id"], q="nothing-like-this") == []


def test_invalid_limit_is_422(sandbox: Sandbox, source: dict[str, Any]) -> None:
    for limit in ("0", "501", "ten"):
        response = sandbox.admin.get(f"/api/sources/{source['id']}/events", params={"limit": limit})
        assert response.status_code == 422
        assert response.json()["error"]["details"] == {"field": "limit"}


def test_raw_keeps_the_call_as_received_plus_stamps(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    call = {
        "userId": "u",
        "event": "E",
        "properties": {"b": 2, "a": [1, {"x": None}]},
        "context": {"k": "v"},
    }
    sandbox.http.post("/v1/track", json=call, headers=basic(source["write_key"]))
    [event] = sandbox.events(source["id"])
    raw = event["raw"]
    assert {k: raw[k] for k in call} == call
    assert set(raw) - set(call) == {"type", "messageId", "receivedAt", "timestamp"}


def test_smaller_debugger_size(make_sandbox: SandboxFactory) -> None:
    small = make_sandbox(debugger_size=5)
    source = small.new_source()
    _send(small, source, 12)
    assert [e["message_id"] for e in small.events(source["id"])] == [
        f"msg-{i}" for i in range(11, 6, -1)
    ]


def test_live_stream_delivers_a_posted_event(sandbox: Sandbox, source: dict[str, Any]) -> None:
    received: list[dict[str, Any]] = []
    connected = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        url = f"{sandbox.url}/api/sources/{source['id']}/events/stream"
        with httpx.stream("GET", url, headers=headers, timeout=10) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    connected.set()
                if line.startswith("data: "):
                    received.append(orjson.loads(line[6:]))
                    return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert connected.wait(5)
    call = {"userId": "live-user", "event": "Streamed", "messageId": "live-1"}
    assert (
        sandbox.http.post("/v1/track", json=call, headers=basic(source["write_key"])).status_code
        == 200
    )
    thread.join(5)
    [event] = received
    assert event["message_id"] == "live-1"
    assert event["raw"]["userId"] == "live-user"
    assert event["pretty"].startswith('analytics.track("Streamed"')


def test_stream_ends_when_the_source_is_deleted(sandbox: Sandbox) -> None:
    source = sandbox.new_source()
    connected = threading.Event()
    ended = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        url = f"{sandbox.url}/api/sources/{source['id']}/events/stream"
        with httpx.stream("GET", url, headers=headers, timeout=10) as response:
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    connected.set()
        ended.set()

    threading.Thread(target=listen, daemon=True).start()
    assert connected.wait(5)
    assert sandbox.admin.delete(f"/api/sources/{source['id']}").status_code == 204
    assert ended.wait(5)


def test_stream_needs_rights(sandbox: Sandbox, source: dict[str, Any]) -> None:
    response = sandbox.http.get(f"/api/sources/{source['id']}/events/stream")
    assert response.status_code == 401


def test_events_filter_by_call_type_and_event_name(sandbox: Sandbox) -> None:
    source = sandbox.new_source()
    batch = [
        {"type": "track", "userId": "u", "event": "Order Completed", "messageId": "t-1"},
        {"type": "track", "userId": "u", "event": "Cart Viewed", "messageId": "t-2"},
        {"type": "page", "userId": "u", "name": "Order Completed", "messageId": "p-1"},
        {"type": "identify", "userId": "u", "messageId": "i-1"},
    ]
    response = sandbox.http.post("/v1/batch", json={"batch": batch},
                                 headers=basic(source["write_key"]))
    assert response.status_code == 200

    def ids(**params: str) -> list[str]:
        return [e["message_id"] for e in sandbox.events(source["id"], **params)]

    assert ids(type="track") == ["t-2", "t-1"]
    assert ids(event="order completed") == ["p-1", "t-1"]
    assert ids(type="track", event="Order Completed") == ["t-1"]
    assert ids(type="identify", event="Order Completed") == []
    assert ids(type="alias") == []


def _stream_ids(sandbox: Sandbox, source: dict[str, Any], count: int,
                connected: threading.Event | None = None, **request: Any) -> list[str]:
    """The messageIds of the first ``count`` events a new stream sends."""
    url = f"{sandbox.url}/api/sources/{source['id']}/events/stream"
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", **request.pop("headers", {})}
    ids: list[str] = []
    with httpx.stream("GET", url, headers=headers, timeout=5, **request) as response:
        for line in response.iter_lines():
            if line.startswith(": connected") and connected is not None:
                connected.set()
            if line.startswith("data: "):
                ids.append(orjson.loads(line[6:])["message_id"])
                if len(ids) == count:
                    break
    return ids


def test_a_reconnecting_stream_catches_up_from_its_last_event(sandbox: Sandbox) -> None:
    source = sandbox.new_source()
    _send(sandbox, source, 5)  # seq 1..5 = msg-0..msg-4
    assert _stream_ids(sandbox, source, 2, headers={"Last-Event-ID": "3"}) == ["msg-3", "msg-4"]
    assert _stream_ids(sandbox, source, 1, params={"after": "4"}) == ["msg-4"]
    header_wins = _stream_ids(sandbox, source, 1, headers={"Last-Event-ID": "4"},
                              params={"after": "0"})
    assert header_wins == ["msg-4"]


def test_a_stream_without_a_last_event_sends_only_new_events(sandbox: Sandbox) -> None:
    source = sandbox.new_source()
    _send(sandbox, source, 3)
    received: list[str] = []
    connected = threading.Event()
    thread = threading.Thread(
        target=lambda: received.extend(_stream_ids(sandbox, source, 1, connected)))
    thread.start()
    assert connected.wait(5)  # the three earlier events are not replayed
    _send(sandbox, source, 1, start=100)
    thread.join(5)
    assert received == ["msg-100"]


def test_a_call_nested_just_under_the_limit_to_store_is_shown(sandbox: Sandbox) -> None:
    """A call accepted 250 levels deep is shown by the Debugger's API and stream: written
    again inside their answers (one to three levels deeper) it passed orjson's limit, and
    the source's Debugger failed (a 500) until 500 newer events pushed it out."""
    source = sandbox.new_source()
    depth = 251  # the call, its properties, then 251 lists: stored (about 250 at most)
    body = (b'{"batch": [{"type": "track", "userId": "u", "event": "Deep", "messageId": '
            b'"msg-0", "properties": {"d": ' + b"[" * depth + b"]" * depth + b"}}]}")
    sent = sandbox.http.post("/v1/batch", content=body, headers={
        **basic(source["write_key"]), "Content-Type": "application/json"})
    assert sent.status_code == 200, sent.text
    [event] = sandbox.events(source["id"])
    assert event["raw"]["event"] == "Deep"
    nested = event["raw"]["properties"]["d"]
    for _ in range(depth - 1):
        [nested] = nested
    assert nested == []
    assert _stream_ids(sandbox, source, 1, params={"after": "0"}) == ["msg-0"]
