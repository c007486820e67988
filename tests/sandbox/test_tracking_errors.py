"""Bad input gets the status Segment would give, with a short reason; nothing half-recorded.

Segment answers 400 only for a request it cannot read (not JSON, not the right shape, too
large); a bad call inside a readable request is answered 200 and dropped, alone, with its
reason in the drop log. Strict mode refuses the whole request instead. Errors carry Segment's
shape: ``code`` and ``message`` at the top level."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from .conftest import Sandbox, SandboxFactory, basic

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}


def _post(
    sandbox: Sandbox, source: dict[str, Any], path: str, content: bytes, **headers: str
) -> httpx.Response:
    return sandbox.http.post(
        path, content=content, headers={**basic(source["write_key"]), **JSON, **headers}
    )


def _assert_rejected(response: httpx.Response, code: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["code"] == code, "Segment's shape: code and message at the top level"
    assert body["message"]


def _nothing_recorded(sandbox: Sandbox, source: dict[str, Any]) -> None:
    stats = sandbox.stats(source["id"])
    assert (stats["received"], stats["accepted"]) == (0, 0)
    assert sandbox.events(source["id"]) == []


BAD_REQUESTS = [  # unreadable requests: 400 in every mode
    ("not-json", "/v1/track", b"userId=u&event=E", "invalid_json"),
    ("empty", "/v1/track", b"", "invalid_json"),
    ("truncated-json", "/v1/batch", b'{"batch": [{"type": "track"', "invalid_json"),
    ("invalid-utf8", "/v1/track", b'{"userId": "\xff\xfe", "event": "E"}', "invalid_json"),
    ("array-body", "/v1/track", b'[{"userId": "u", "event": "E"}]', "invalid_body"),
    ("array-batch-body", "/v1/batch", b'[{"type": "track"}]', "invalid_body"),
    ("batch-not-list", "/v1/batch", b'{"batch": {"type": "track"}}', "invalid_batch"),
    ("batch-missing", "/v1/batch", b'{"calls": []}', "invalid_batch"),
    ("context-list", "/v1/batch", b'{"batch": [], "context": []}', "invalid_field"),
    ("sentAt-number", "/v1/batch", b'{"batch": [], "sentAt": 5}', "invalid_field"),
    (
        "nested-beyond-parser",
        "/v1/track",
        b'{"userId": "u", "event": "E", "properties": ' + b"[" * 2000 + b"]" * 2000 + b"}",
        "invalid_json",
    ),
]

BAD_CALLS = [  # readable requests with a bad call: 200 and dropped (Segment), 400 (strict)
    ("item-not-object", "/v1/batch", b'{"batch": ["track"]}', "invalid_call"),
    ("item-without-type", "/v1/batch", b'{"batch": [{"userId": "u"}]}', "invalid_call"),
    (
        "item-unknown-type",
        "/v1/batch",
        b'{"batch": [{"type": "purchase", "userId": "u"}]}',
        "invalid_call",
    ),
    (
        "type-is-list",
        "/v1/batch",
        b'{"batch": [{"type": ["track"], "userId": "u"}]}',
        "invalid_call",
    ),
    ("userId-object", "/v1/identify", b'{"userId": {"id": 1}}', "invalid_field"),
    ("userId-bool", "/v1/identify", b'{"userId": true}', "invalid_field"),
    ("event-number", "/v1/track", b'{"userId": "u", "event": 5}', "invalid_field"),
    (
        "properties-string",
        "/v1/track",
        b'{"userId": "u", "event": "E", "properties": "x"}',
        "invalid_field",
    ),
    (
        "timestamp-number",
        "/v1/track",
        b'{"userId": "u", "event": "E", "timestamp": 1}',
        "invalid_field",
    ),
    (
        "messageId-too-long",
        "/v1/track",
        b'{"userId": "u", "event": "E", "messageId": "' + b"m" * 101 + b'"}',
        "invalid_field",
    ),
    (
        "nested-too-deep-to-store",
        "/v1/track",
        b'{"userId": "u", "event": "E", "properties": {"a": ' + b"[" * 300 + b"]" * 300 + b"}}",
        "too_deep",
    ),
]


@pytest.mark.parametrize(
    ("path", "content", "code"), [b[1:] for b in BAD_REQUESTS], ids=[b[0] for b in BAD_REQUESTS]
)
def test_unreadable_requests_get_400_and_nothing_is_recorded(
    sandbox: Sandbox, source: dict[str, Any], path: str, content: bytes, code: str
) -> None:
    _assert_rejected(_post(sandbox, source, path, content), code)
    _nothing_recorded(sandbox, source)
    assert sandbox.stats(source["id"])["rejected"] == 1


@pytest.mark.parametrize(
    ("path", "content", "code"), [b[1:] for b in BAD_CALLS], ids=[b[0] for b in BAD_CALLS]
)
def test_bad_calls_are_answered_200_and_dropped_with_the_reason(
    sandbox: Sandbox, source: dict[str, Any], path: str, content: bytes, code: str
) -> None:
    response = _post(sandbox, source, path, content)
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert sandbox.events(source["id"]) == []
    stats = sandbox.stats(source["id"])
    assert (stats["received"], stats["accepted"], stats["dropped"]) == (1, 0, 1)
    assert stats["rejected"] == 0
    [drop] = sandbox.dropped(source["id"])
    assert drop["reason"] == code
    assert drop["detail"] and drop["detail"] != drop["message"], "the detail names the problem"


@pytest.mark.parametrize(
    ("path", "content", "code"), [b[1:] for b in BAD_CALLS], ids=[b[0] for b in BAD_CALLS]
)
def test_strict_mode_refuses_a_request_with_a_bad_call(
    strict_sandbox: Sandbox, path: str, content: bytes, code: str
) -> None:
    source = strict_sandbox.new_source()
    _assert_rejected(_post(strict_sandbox, source, path, content), code)
    _nothing_recorded(strict_sandbox, source)
    assert strict_sandbox.stats(source["id"])["rejected"] == 1


GOOD = [{"type": "track", "userId": "u", "event": f"E{i}", "messageId": f"m{i}"} for i in range(50)]
BAD = [
    {"type": "identify", "userId": ["not", "an", "id"], "messageId": "bad-user"},
    {"type": "purchase", "userId": "u", "messageId": "bad-type"},
    {"type": "track", "userId": "u", "event": "E", "messageId": "x" * 101},
]


def test_bad_calls_of_a_batch_are_dropped_and_the_others_kept(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    batch = [*GOOD[:25], *BAD, *GOOD[25:]]
    response = _post(sandbox, source, "/v1/batch", orjson.dumps({"batch": batch}))
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert len(sandbox.events(source["id"], limit=500)) == 50
    drops = {d["reason"]: d for d in sandbox.dropped(source["id"])}
    assert set(drops) == {"invalid_field", "invalid_call"}
    assert sandbox.stats(source["id"])["dropped_by_reason"] == {
        "invalid_field": 2, "invalid_call": 1,
    }
    details = sorted(d["detail"] for d in sandbox.dropped(source["id"]))
    assert details == [
        "batch[25].userId must be a string",
        "batch[26].type must be one of alias, group, identify, page, screen, track",
        "batch[27].messageId is longer than 100 characters",
    ]


def test_strict_mode_refuses_the_whole_batch_for_one_bad_call(strict_sandbox: Sandbox) -> None:
    source = strict_sandbox.new_source()
    batch = [*GOOD, BAD[0]]
    response = _post(strict_sandbox, source, "/v1/batch", orjson.dumps({"batch": batch}))
    _assert_rejected(response, "invalid_field")
    assert "batch[50].userId" in response.json()["message"]
    _nothing_recorded(strict_sandbox, source)
    # The same ids are not remembered as duplicates: a corrected retry is accepted whole.
    corrected = _post(strict_sandbox, source, "/v1/batch", orjson.dumps({"batch": GOOD}))
    assert corrected.status_code == 200
    assert strict_sandbox.stats(source["id"])["accepted"] == 50


def test_truncated_gzip_is_rejected(sandbox: Sandbox, source: dict[str, Any]) -> None:
    body = gzip.compress(
        orjson.dumps({"batch": [{"type": "track", "userId": "u", "event": "E"}] * 50})
    )
    _assert_rejected(
        _post(sandbox, source, "/v1/batch", body[: len(body) // 2], **{"Content-Encoding": "gzip"}),
        "invalid_gzip",
    )
    _assert_rejected(
        _post(sandbox, source, "/v1/batch", b"\x1f\x8bnot gzip at all"), "invalid_gzip"
    )
    _nothing_recorded(sandbox, source)


def test_a_gzip_body_of_several_members_is_read_whole_and_bytes_after_it_refused(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    """RFC 1952 allows several members (``cat a.gz b.gz``; Go's reader reads them all): the
    body is their bytes in order (it was the first member's only: 400 invalid_json). Bytes
    after the last member that are not one are an invalid body (they were ignored)."""
    body = orjson.dumps({"batch": [{"type": "track", "userId": "u", "event": "E",
                                    "messageId": f"m-{i}"} for i in range(10)]})
    members = gzip.compress(body[:100]) + gzip.compress(body[100:])
    _assert_rejected(_post(sandbox, source, "/v1/batch", gzip.compress(body) + b"garbage",
                           **{"Content-Encoding": "gzip"}), "invalid_gzip")
    _nothing_recorded(sandbox, source)
    assert _post(sandbox, source, "/v1/batch", members,
                 **{"Content-Encoding": "gzip"}).status_code == 200
    assert sandbox.stats(source["id"])["accepted"] == 10
    many = gzip.compress(body) + gzip.compress(b"") * 64  # (each member copies the rest)
    _assert_rejected(_post(sandbox, source, "/v1/batch", many, **{"Content-Encoding": "gzip"}),
                     "invalid_gzip")


def test_gzip_bomb_is_refused_without_inflating_it_all(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    bomb = gzip.compress(b'{"batch": [' + b" " * 50_000_000 + b"]}", 9)
    assert len(bomb) < 100_000
    _assert_rejected(
        _post(sandbox, source, "/v1/batch", bomb, **{"Content-Encoding": "gzip"}), "too_large"
    )


def test_unsupported_content_type_and_encoding(sandbox: Sandbox, source: dict[str, Any]) -> None:
    body = orjson.dumps({"userId": "u", "event": "E"})
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    _assert_rejected(_post(sandbox, source, "/v1/track", body, **form), "unsupported_content_type")
    _assert_rejected(
        _post(sandbox, source, "/v1/track", body, **{"Content-Encoding": "br"}),
        "unsupported_encoding",
    )


def test_single_call_over_32_kb_is_rejected(sandbox: Sandbox, source: dict[str, Any]) -> None:
    body = orjson.dumps({"userId": "u", "event": "E", "properties": {"blob": "x" * 33_000}})
    _assert_rejected(_post(sandbox, source, "/v1/track", body), "too_large")
    just_under = orjson.dumps({"userId": "u", "event": "E", "properties": {"blob": "x" * 32_000}})
    assert _post(sandbox, source, "/v1/track", just_under).status_code == 200


def test_batch_call_over_32_kb_is_rejected(sandbox: Sandbox, source: dict[str, Any]) -> None:
    big = {"type": "track", "userId": "u", "event": "E", "properties": {"blob": "x" * 33_000}}
    response = _post(
        sandbox,
        source,
        "/v1/batch",
        orjson.dumps({"batch": [{"type": "identify", "userId": "u"}, big]}),
    )
    _assert_rejected(response, "too_large")
    assert "batch[1]" in response.json()["message"]
    _nothing_recorded(sandbox, source)


@pytest.mark.parametrize("fault", [{"type": "nope"}, {"userId": True}, {"messageId": "m" * 101},
                                   {"userId": None}])
def test_batch_call_over_32_kb_is_rejected_whatever_else_is_wrong_with_it(
    sandbox: Sandbox, source: dict[str, Any], fault: dict[str, Any]
) -> None:
    """The size is checked before a bad call is dropped: an unknown type, a field of the wrong
    type or a messageId too long had made the same 40 KB call a 200 (dropped)."""
    big = {"type": "track", "userId": "u", "event": "E", "properties": {"blob": "x" * 40_000},
           **fault}
    response = _post(sandbox, source, "/v1/batch", orjson.dumps({"batch": [big]}))
    _assert_rejected(response, "too_large")
    assert "batch[0]" in response.json()["message"]
    _nothing_recorded(sandbox, source)


def test_batch_over_500_kb_is_rejected(sandbox: Sandbox, source: dict[str, Any]) -> None:
    call = {"type": "track", "userId": "u", "event": "E", "properties": {"blob": "x" * 20_000}}
    body = orjson.dumps({"batch": [call] * 26})
    assert 500 * 1024 < len(body) < 600_000
    _assert_rejected(_post(sandbox, source, "/v1/batch", body), "too_large")
    _assert_rejected(_post(sandbox, source, "/v1/batch", gzip.compress(body)), "too_large")


def test_ten_megabyte_body_is_refused_by_content_length(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    body = b'{"batch": [' + b"1," * 5_000_000 + b"1]}"
    _assert_rejected(_post(sandbox, source, "/v1/batch", body), "too_large")
    # The connection is still usable and the receiver still works.
    ok = _post(sandbox, source, "/v1/track", orjson.dumps({"userId": "u", "event": "After"}))
    assert ok.status_code == 200


def test_ten_megabyte_streamed_body_is_refused_by_counting(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"batch": ['
        for _ in range(200):
            yield b" " * 50_000

    _assert_rejected(_post(sandbox, source, "/v1/batch", chunks()), "too_large")  # type: ignore[arg-type]
    assert sandbox.state.receiver.requests > 0


DROPS = [
    ("no-ids", "/v1/track", {"event": "E"}, "missing_user_id"),
    ("empty-ids", "/v1/identify", {"userId": "", "anonymousId": ""}, "missing_user_id"),
    ("track-without-event", "/v1/track", {"userId": "u"}, "missing_event"),
    ("group-without-groupId", "/v1/group", {"userId": "u"}, "missing_group_id"),
    ("alias-without-previousId", "/v1/alias", {"userId": "u"}, "missing_previous_id"),
    (
        "alias-without-userId",
        "/v1/alias",
        {"previousId": "p", "anonymousId": "a"},
        "missing_user_id",
    ),
]


@pytest.mark.parametrize(
    ("path", "call", "reason"), [d[1:] for d in DROPS], ids=[d[0] for d in DROPS]
)
def test_semantic_drops_get_200_and_are_shown_with_the_reason(
    sandbox: Sandbox, source: dict[str, Any], path: str, call: dict[str, Any], reason: str
) -> None:
    response = _post(sandbox, source, path, orjson.dumps({**call, "messageId": "dropped-1"}))
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert sandbox.events(source["id"]) == []
    stats = sandbox.stats(source["id"])
    assert (stats["received"], stats["accepted"], stats["dropped"]) == (1, 0, 1)
    assert stats["dropped_by_reason"] == {reason: 1}
    [drop] = sandbox.dropped(source["id"])
    assert drop["reason"] == reason
    assert drop["message_id"] == "dropped-1"
    assert drop["message"]


def test_drops_inside_a_batch_do_not_stop_the_others(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    batch = [
        {"type": "track", "userId": "u", "event": "Kept"},
        {"type": "track", "event": "No user"},
        {"type": "track", "anonymousId": "a"},
    ]
    assert _post(sandbox, source, "/v1/batch", orjson.dumps({"batch": batch})).status_code == 200
    assert [e["raw"]["event"] for e in sandbox.events(source["id"])] == ["Kept"]
    assert sandbox.stats(source["id"])["dropped_by_reason"] == {
        "missing_user_id": 1,
        "missing_event": 1,
    }


def test_more_than_2500_calls_are_answered_200_and_dropped(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    batch = [{"type": "track", "userId": "u", "event": "E"} for _ in range(2_501)]
    response = _post(sandbox, source, "/v1/batch", orjson.dumps({"batch": batch}))
    assert response.status_code == 200
    assert sandbox.events(source["id"]) == []
    stats = sandbox.stats(source["id"])
    assert (stats["received"], stats["dropped"], stats["accepted"]) == (2_501, 2_501, 0)
    assert [(d["reason"], d["count"]) for d in sandbox.dropped(source["id"])] == [
        ("too_many_calls", 2_501)
    ]
    exactly = _post(sandbox, source, "/v1/batch", orjson.dumps({"batch": batch[:2_500]}))
    assert exactly.status_code == 200
    assert sandbox.stats(source["id"])["accepted"] == 2_500


def test_unknown_write_key_in_segment_mode_is_200_and_dropped(sandbox: Sandbox) -> None:
    unknown = "ZZZZ" + "0" * 28
    before = sandbox.admin.get("/api/receiver").json()["unknown_write_key"]
    response = sandbox.http.post(
        "/v1/batch",
        json={"batch": [{"type": "track", "userId": "u", "event": "E"}] * 3},
        headers=basic(unknown),
    )
    assert response.status_code == 200
    assert response.json() == {"success": True}
    after = sandbox.admin.get("/api/receiver").json()["unknown_write_key"]
    assert after["requests"] == before["requests"] + 1
    assert after["events"] == before["events"] + 3
    assert after["recent"][0]["write_key"].startswith("ZZZZ")
    assert unknown not in str(after)  # the log shows a hint, never the whole key


def test_unknown_key_still_gets_400_for_bad_json(sandbox: Sandbox) -> None:
    response = sandbox.http.post("/v1/track", content=b"{", headers={**basic("Z" * 32), **JSON})
    assert response.status_code == 400


def test_a_missing_key_is_200_and_dropped_in_segment_mode(sandbox: Sandbox) -> None:
    before = sandbox.admin.get("/api/receiver").json()
    for headers in ({}, basic("")):
        response = sandbox.http.post("/v1/track", json={"userId": "u", "event": "E"},
                                     headers=headers)
        assert (response.status_code, response.json()) == (200, {"success": True})
    after = sandbox.admin.get("/api/receiver").json()
    assert after["missing_key_requests"] == before["missing_key_requests"] + 2


def test_a_short_key_is_200_and_dropped_in_segment_mode(sandbox: Sandbox) -> None:
    """As analytics-python's own test "success on invalid write key" expects of Segment."""
    response = sandbox.http.post("/v1/batch", headers=basic("invalid"),
                                 json={"batch": [{"type": "track", "userId": "u", "event": "E"}]})
    assert (response.status_code, response.json()) == (200, {"success": True})
    recent = sandbox.admin.get("/api/receiver").json()["unknown_write_key"]["recent"][0]
    assert recent == {**recent, "write_key": "… (7 characters)", "events": 1}


def test_strict_mode_answers_401_like_rudderstack(make_sandbox: SandboxFactory) -> None:
    strict = make_sandbox(unknown_key_mode="strict")
    source = strict.new_source()
    call = {"userId": "u", "event": "E"}
    for headers in (basic("Z" * 32), {}, basic("short")):
        response = strict.http.post("/v1/track", json=call, headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] in ("invalid_write_key", "missing_write_key")
    assert (
        strict.http.post("/v1/track", json=call, headers=basic(source["write_key"])).status_code
        == 200
    )
    assert strict.stats(source["id"])["accepted"] == 1
    bad_json = strict.http.post("/v1/track", content=b"{", headers={**basic("Z" * 32), **JSON})
    assert bad_json.status_code == 401  # the key is checked before the body, as RudderStack does
    assert strict.admin.get("/api/receiver").json()["unknown_write_key"]["requests"] == 2


def test_unknown_call_path_is_404(sandbox: Sandbox, source: dict[str, Any]) -> None:
    response = _post(sandbox, source, "/v1/purchase", b"{}")
    assert response.status_code == 404


def test_get_on_a_tracking_path_is_405(sandbox: Sandbox) -> None:
    assert sandbox.http.get("/v1/track").status_code == 405


def test_half_a_surrogate_pair_escaped_alone_is_read_as_a_replacement_character(
    sandbox: Sandbox, source: dict[str, Any]
) -> None:
    """A browser's JSON.stringify writes "\\ud83d" for text cut inside an emoji; Go's decoder
    (Segment's edge) reads U+FFFD: the batch is accepted, not refused whole as not JSON. An
    escaped backslash before "ud83d" stays text; a whole pair stays the emoji."""
    body = (b'{"batch": [{"type": "track", "userId": "u", "event": "Cut \\ud83d",'
            b' "properties": {"whole": "\\ud83d\\ude00", "text": "\\\\ud83d"}}]}')
    assert _post(sandbox, source, "/v1/batch", body).status_code == 200
    [event] = sandbox.events(source["id"])
    assert event["raw"]["event"] == "Cut \ufffd"
    assert event["raw"]["properties"] == {"whole": "\U0001f600", "text": "\\ud83d"}
