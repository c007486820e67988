"""The official Python clients (Segment's and RudderStack's) send to the receiver intact."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Sandbox, SandboxFactory

pytestmark = pytest.mark.integration

EVENTS = 1_200


@pytest.fixture
def roomy(make_sandbox: SandboxFactory) -> Sandbox:
    return make_sandbox(debugger_size=EVENTS + 10)


def _send_with(client: Any) -> dict[str, dict[str, Any]]:
    """Send identify/track/page/group/alias calls; the messages by messageId."""
    sent: dict[str, dict[str, Any]] = {}
    for i in range(EVENTS):
        user = f"user-{i % 40}"
        if i % 5 == 0:
            ok, msg = client.identify(user, {"email": f"{user}@example.com", "n": i})
        elif i % 5 == 1:
            ok, msg = client.page(user, "Docs", f"Page {i}", {"path": f"/p/{i}"})
        elif i % 5 == 2:
            ok, msg = client.group(user, "acme", {"plan": "pro"})
        elif i % 5 == 3:
            ok, msg = client.alias(f"anon-{i}", user)
        else:
            ok, msg = client.track(user, "Order Completed", {"order": i, "total": i * 1.5})
        assert ok
        sent[msg["messageId"]] = msg
    client.flush()
    client.shutdown()
    return sent


def _check_arrived(
    sandbox: Sandbox, source: dict[str, Any], sent: dict[str, dict[str, Any]]
) -> None:
    stats = sandbox.stats(source["id"])
    assert (stats["accepted"], stats["dropped"], stats["duplicates"], stats["rejected"]) == (
        EVENTS,
        0,
        0,
        0,
    )
    events = {e["message_id"]: e for e in sandbox.events(source["id"], limit=EVENTS)}
    assert events.keys() == sent.keys()
    for message_id, msg in sent.items():
        raw = events[message_id]["raw"]
        assert raw["type"] == msg["type"]
        for name in ("userId", "event", "properties", "traits", "groupId", "previousId", "name"):
            if msg.get(name) is not None:
                assert raw[name] == msg[name], name
        assert raw["originalTimestamp"] == msg["timestamp"]
        assert raw["context"]["library"]["name"]


def test_segment_analytics_python_delivers_every_event(roomy: Sandbox) -> None:
    from segment.analytics import Client

    source = roomy.new_source()
    errors: list[Exception] = []
    client = Client(
        source["write_key"],
        host=roomy.url,
        gzip=True,
        upload_interval=0.05,
        on_error=lambda error, batch: errors.append(error),
        max_queue_size=EVENTS * 2,
    )
    sent = _send_with(client)
    assert errors == []
    _check_arrived(roomy, source, sent)


def test_rudder_sdk_python_delivers_every_event(roomy: Sandbox) -> None:
    from rudderstack.analytics import Client

    source = roomy.new_source()
    errors: list[Exception] = []
    client = Client(
        source["write_key"],
        host=roomy.url,
        upload_interval=0.05,
        on_error=lambda error, batch: errors.append(error),
        max_queue_size=EVENTS * 2,
    )
    sent = _send_with(client)
    assert errors == []
    _check_arrived(roomy, source, sent)


def test_segment_client_sync_mode_single_batches(roomy: Sandbox) -> None:
    from segment.analytics import Client

    source = roomy.new_source()
    client = Client(source["write_key"], host=roomy.url, sync_mode=True)
    ok, msg = client.track("user-1", "Synced", {"a": 1})
    assert ok
    [event] = roomy.events(source["id"])
    assert event["message_id"] == msg["messageId"]
    assert event["raw"]["sentAt"]  # the batch's sentAt is kept on the call
