"""A batch's calls are checked, stamped and deduplicated per call exactly as one call alone,
though the receiver serialises each call once and reads the clock once per request."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from segbridge.sandbox.limits import MAX_CALL_BYTES

from .conftest import Sandbox, SandboxFactory, basic

pytestmark = pytest.mark.integration

FILLER = {"type": "identify", "userId": "filler", "traits": {"pad": "p" * 20_000}}


def _batch(sandbox: Sandbox, source: dict[str, Any], calls: list[Any], **body: Any) -> int:
    """POST a batch over 32 KB (so that each call's size is checked); the status."""
    content = orjson.dumps({"batch": [FILLER, FILLER, *calls], **body})
    assert len(content) > MAX_CALL_BYTES
    headers = {**basic(source["write_key"]), "Content-Type": "application/json"}
    return sandbox.http.post("/v1/batch", content=content, headers=headers).status_code


def _call_of_size(size: int, **fields: Any) -> dict[str, Any]:
    call = {"type": "track", "event": "Sized", "properties": {"blob": ""}, **fields}
    call["properties"]["blob"] = "x" * (size - len(orjson.dumps(call)))
    assert len(orjson.dumps(call)) == size
    return call


def test_a_call_just_under_32_kb_as_sent_is_kept_though_stamping_makes_it_bigger(
    tmp_path: Path, make_sandbox: SandboxFactory
) -> None:
    archive = tmp_path / "events.ndjson"
    sandbox = make_sandbox(archive_path=archive)
    source = sandbox.new_source()
    call = _call_of_size(MAX_CALL_BYTES, userId="u", messageId="just-under")
    assert _batch(sandbox, source, [call], sentAt="2026-01-01T00:00:00.000Z") == 200
    [*_, last] = archive.read_bytes().splitlines()
    assert len(last) > MAX_CALL_BYTES, "stamped: receivedAt, sentAt and timestamp added"
    assert orjson.loads(last)["messageId"] == "just-under"
    assert sandbox.events(source["id"])[0]["raw"] == orjson.loads(last)


def test_a_call_over_32_kb_is_refused_even_when_it_would_be_dropped(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    no_user = _call_of_size(MAX_CALL_BYTES + 1, messageId="no-user")
    assert _batch(sandbox, source, [no_user]) == 400
    stats = sandbox.stats(source["id"])
    assert (stats["received"], stats["dropped"], stats["rejected"]) == (0, 0, 1)


def test_a_call_too_deep_to_store_is_dropped_as_it_was_sent(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    deep = b'{"type": "track", "userId": "u", "event": "Deep", "properties": {"a": '
    deep += b"[" * 300 + b"]" * 300 + b"}}"
    kept = {"type": "track", "userId": "u", "event": "Kept", "messageId": "kept-1"}
    calls = b",".join([orjson.dumps(FILLER), orjson.dumps(FILLER), deep, orjson.dumps(kept)])
    content = b'{"context": {"ip": "10.0.0.1"}, "batch": [' + calls + b"]}"
    headers = {**basic(source["write_key"]), "Content-Type": "application/json"}
    assert sandbox.http.post("/v1/batch", content=content, headers=headers).status_code == 200
    [drop] = sandbox.dropped(source["id"])
    assert drop["reason"] == "too_deep"
    assert drop["message_id"] is None, "no messageId was sent: none is made up for a drop"
    events = {e["message_id"]: e["raw"] for e in sandbox.events(source["id"])}
    assert events["kept-1"]["context"] == {"ip": "10.0.0.1"}
    assert sandbox.stats(source["id"])["accepted"] == 3


def test_a_message_id_repeated_inside_one_batch_and_in_the_next_is_a_duplicate(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    calls = [
        {"type": "track", "userId": "u", "event": "First", "messageId": "same"},
        {"type": "track", "userId": "u", "event": "Again", "messageId": "same"},
        {"type": "track", "event": "No user", "messageId": "other"},
        {"type": "track", "userId": "u", "event": "Other", "messageId": "other"},
    ]
    assert _batch(sandbox, source, calls) == 200
    assert _batch(sandbox, source, calls[:1]) == 200
    kept = [e["raw"]["event"] for e in sandbox.events(source["id"]) if e["raw"]["type"] == "track"]
    assert sorted(kept) == ["First", "Other"]
    stats = sandbox.stats(source["id"])
    assert stats["dropped_by_reason"] == {"duplicate_message_id": 2, "missing_user_id": 1}


def test_calls_sharing_a_timestamp_are_each_corrected_for_clock_skew(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    sent_at = "2020-01-01T00:00:10.000Z"
    calls = [
        {"type": "track", "userId": "u", "event": "A", "timestamp": "2020-01-01T00:00:00.000Z"},
        {"type": "track", "userId": "u", "event": "B", "timestamp": "2020-01-01T00:00:00.000Z"},
        {"type": "track", "userId": "u", "event": "C", "timestamp": "2020-01-01T00:00:05.000Z"},
        {"type": "track", "userId": "u", "event": "D", "timestamp": "2020-01-01T00:00:05.000Z",
         "sentAt": "2020-01-01T00:00:06.000Z"},
    ]
    assert _batch(sandbox, source, calls, sentAt=sent_at) == 200
    raw = {e["raw"]["event"]: e["raw"] for e in sandbox.events(source["id"]) if "event" in e["raw"]}
    received = {name: raw[name]["receivedAt"] for name in "ABCD"}
    assert len(set(received.values())) == 1, "one receipt time per request"
    behind = {name: _ms(raw[name]["receivedAt"]) - _ms(raw[name]["timestamp"]) for name in "ABCD"}
    assert behind == {"A": 10_000, "B": 10_000, "C": 5_000, "D": 1_000}
    assert raw["A"]["originalTimestamp"] == "2020-01-01T00:00:00.000Z"


def _ms(value: str) -> int:
    return round(datetime.fromisoformat(value).timestamp() * 1000)


def test_a_correction_past_the_years_a_date_holds_keeps_the_timestamp_as_sent(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    """Go's zero time sent with a clock ahead of the receiver's (or the last second of 9999
    with one behind) cannot be corrected: the timestamp stays as sent, and the batch, with its
    other calls, is accepted (it was a 500, and every retry failed the same way)."""
    calls = [
        {"type": "track", "userId": "u", "event": "Zero", "timestamp": "0001-01-01T00:00:00Z",
         "sentAt": "2999-01-01T00:00:00Z"},
        {"type": "track", "userId": "u", "event": "End", "timestamp": "9999-12-31T23:59:59Z",
         "sentAt": "2000-01-01T00:00:00Z"},
        {"type": "track", "userId": "u", "event": "Fine", "timestamp": "2020-01-01T00:00:00Z"},
    ]
    assert _batch(sandbox, source, calls) == 200
    raw = {e["raw"]["event"]: e["raw"] for e in sandbox.events(source["id"]) if "event" in e["raw"]}
    assert raw["Zero"]["timestamp"] == raw["Zero"]["originalTimestamp"] == "0001-01-01T00:00:00Z"
    assert raw["End"]["timestamp"] == "9999-12-31T23:59:59Z"
    assert raw["Fine"]["timestamp"] == "2020-01-01T00:00:00Z"
