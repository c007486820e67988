"""The call sent for a deleted key: its identity as last sent, the key under the key field's
name, the constants chosen, and a messageId that is the same every time the same key and
version are deleted (a retried end of run is deduplicated), different for another version."""

from __future__ import annotations

import orjson

from segbridge.runs.diff_deletions import DeletedCall, deleted_calls
from segbridge.runs.message_ids import MessageIds

IDS = MessageIds("flw_1", "Orders", "track")
KNOWN = orjson.dumps({"key": "42", "userId": "c42", "anonymousId": None})


def body(spec: DeletedCall, gone: tuple[int, int, bytes | None]) -> dict[str, object]:
    made = spec.body(IDS, gone, "2026-11-30T07:00:00Z")
    assert made is not None
    loaded: dict[str, object] = orjson.loads(made)
    return loaded


def test_a_track_carries_the_identity_the_key_and_its_properties() -> None:
    spec = DeletedCall.of({"call": "track", "event": "Order Deleted",
                           "properties": {"reason": "gone", "order_id": "not this"}}, "order_id")
    assert spec is not None
    call = body(spec, (7, 123, KNOWN))
    message_id = call.pop("messageId")
    assert call == {"type": "track", "userId": "c42", "event": "Order Deleted",
                    "properties": {"reason": "gone", "order_id": "42"},
                    "timestamp": "2026-11-30T07:00:00Z"}
    assert isinstance(message_id, str) and message_id.startswith("sb-")
    assert body(spec, (7, 123, KNOWN))["messageId"] == message_id  # sent again: the same
    assert body(spec, (7, 124, KNOWN))["messageId"] != message_id  # another version
    assert message_id != IDS.by_key("42") and message_id != IDS.by_version("42", 123)


def test_an_identify_carries_traits_and_an_anonymous_id() -> None:
    spec = DeletedCall.of({"call": "identify", "traits": {"deleted": True}}, "email")
    assert spec is not None
    known = orjson.dumps({"key": "a@x.example", "userId": None, "anonymousId": "anon-1"})
    call = body(spec, (1, 2, known))
    assert call["type"] == "identify" and call["anonymousId"] == "anon-1"
    assert "userId" not in call and "event" not in call
    assert call["traits"] == {"deleted": True, "email": "a@x.example"}


def test_a_key_without_an_identity_kept_cannot_be_addressed() -> None:
    spec = DeletedCall.of({"call": "track", "event": "Gone"}, "id")
    assert spec is not None
    assert spec.body(IDS, (1, 2, None), "t") is None
    assert spec.body(IDS, (1, 2, orjson.dumps({"key": "1", "userId": ""})), "t") is None


def test_only_imports_that_ask_send_calls_for_deleted_keys() -> None:
    class Import:
        def __init__(self, deleted: object) -> None:
            self.deleted = deleted

    found = deleted_calls([Import(None), Import({"call": "track", "event": "Gone"})], "id")
    assert list(found) == [1] and found[1].event == "Gone" and found[1].key_field == "id"
    assert deleted_calls([Import({"call": "track", "event": "Gone"})], None) == {}
