"""Validation and stamping of tracking calls, before anything is recorded.

A request is checked whole: every call of a batch is validated and stamped first, and only a
request without errors reaches the recorder, so a bad call never leaves half a batch behind.

Outcomes, as Segment gives them:

* 400 (``TrackingError``): the body is not a JSON object, ``batch`` is not an array, a call
  is not an object or has no known ``type``, a field has the wrong type (``userId`` as an
  object, ``properties`` as a string, ...), a ``messageId`` over 100 characters, a call over
  32 KB, JSON nested too deeply to store;
* 200 and dropped (``PreparedCall.drop``): no userId and no anonymousId, a track call without
  ``event``, a group call without ``groupId``, an alias without ``previousId`` or ``userId``;
  duplicates are found later, by the recorder.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from segbridge.sandbox.limits import (
    CALL_TYPES,
    MAX_BATCH_CALLS,
    MAX_CALL_BYTES,
    MAX_MESSAGE_ID_CHARS,
)
from segbridge.sandbox.timestamps import Receipt

DROP_REASONS = {
    "missing_user_id": "the call has no userId and no anonymousId",
    "missing_event": "a track call without event",
    "missing_group_id": "a group call without groupId",
    "missing_previous_id": "an alias call without previousId",
    "duplicate_message_id": "this messageId was already received in the last 24 hours",
    "too_many_calls": f"a batch of more than {MAX_BATCH_CALLS:,} calls is dropped whole",
}
_ID = (str, int, float)  # exact types: JSON true/false are not ids
_OBJECT = (dict,)
_TEXT = (str,)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("userId", "anonymousId", "groupId", "previousId"), _ID),
    **dict.fromkeys(("properties", "traits", "context", "integrations"), _OBJECT),
    **dict.fromkeys(("event", "name", "category", "timestamp", "sentAt", "messageId"), _TEXT),
}
_EXPECTED: dict[tuple[type, ...], str] = {_ID: "a string", _OBJECT: "an object", _TEXT: "a string"}
_TYPES_TEXT = ", ".join(sorted(CALL_TYPES))


class TrackingError(Exception):
    """A request the tracking API refuses; nothing of it is recorded."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(code: str, message: str) -> TrackingError:
    return TrackingError(400, code, message)


@dataclass(slots=True)
class PreparedCall:
    """One validated call: stamped and serialized when accepted, or a drop reason."""

    call_type: str
    call: dict[str, Any]
    message_id: str | None
    drop: str | None = None
    line: bytes = b""
    generated_id: bool = False


@dataclass(slots=True)
class PreparedRequest:
    calls: list[PreparedCall] = field(default_factory=list)
    over_limit: int = 0  # calls of a batch dropped for being over MAX_BATCH_CALLS


def _where(index: int | None) -> str:
    return "" if index is None else f"batch[{index}]."


def check_types(call: dict[str, Any], index: int | None = None) -> None:
    """Raise a 400 ``TrackingError`` for the first field of a wrong type."""
    for name, value in call.items():
        allowed = _FIELD_TYPES.get(name)
        if allowed is not None and value is not None and type(value) not in allowed:
            message = f"{_where(index)}{name} must be {_EXPECTED[allowed]}"
            raise bad_request("invalid_field", message)
    message_id = call.get("messageId")
    if message_id is not None and len(message_id) > MAX_MESSAGE_ID_CHARS:
        message = f"messageId is longer than {MAX_MESSAGE_ID_CHARS} characters"
        raise bad_request("invalid_field", _where(index) + message)


def drop_reason(call: dict[str, Any], call_type: str) -> str | None:
    """Why Segment would answer 200 yet never show this call; None if it is acceptable."""
    if call_type == "alias":
        if call.get("previousId") in (None, ""):
            return "missing_previous_id"
        return "missing_user_id" if call.get("userId") in (None, "") else None
    if call.get("userId") in (None, "") and call.get("anonymousId") in (None, ""):
        return "missing_user_id"
    if call_type == "track" and not call.get("event"):
        return "missing_event"
    if call_type == "group" and call.get("groupId") in (None, ""):
        return "missing_group_id"
    return None


def _dump(call: dict[str, Any], index: int | None) -> bytes:
    try:
        return orjson.dumps(call)
    except TypeError as exc:  # orjson's recursion limit
        raise bad_request("too_deep", f"{_where(index)}JSON is nested too deeply") from exc


@dataclass(slots=True)
class _Shared:
    """What every call of one request shares."""

    receipt: Receipt
    sent_at: object = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    check_size: bool = False


def _merge(call: dict[str, Any], name: str, shared: dict[str, Any] | None) -> None:
    if shared:
        own = call.get(name)
        call[name] = {**shared, **own} if own else shared


def _prepare(call: dict[str, Any], call_type: str, index: int | None, s: _Shared) -> PreparedCall:
    check_types(call, index)
    if s.check_size and len(_dump(call, index)) > MAX_CALL_BYTES:
        raise bad_request("too_large", f"{_where(index)}call is over {MAX_CALL_BYTES:,} bytes")
    message_id = call.get("messageId") or None
    reason = drop_reason(call, call_type)
    if reason:
        return PreparedCall(call_type, call, message_id, reason)
    generated = message_id is None
    if generated:
        message_id = call["messageId"] = f"api-{uuid.uuid4()}"
    _merge(call, "context", s.context)
    _merge(call, "integrations", s.integrations)
    s.receipt.stamp(call, s.sent_at)
    return PreparedCall(call_type, call, message_id, None, _dump(call, index), generated)


def prepare_single(body: object, call_type: str, receipt: Receipt) -> PreparedRequest:
    """Validate and stamp the body of ``POST /v1/<call_type>`` (already within 32 KB)."""
    if not isinstance(body, dict):
        raise bad_request("invalid_body", "the body must be a JSON object")
    body.pop("writeKey", None)
    body["type"] = call_type
    return PreparedRequest([_prepare(body, call_type, None, _Shared(receipt))])


def _shared_object(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise bad_request("invalid_field", f"{name} must be an object")
    return value


def _batch_item(item: object, index: int, shared: _Shared) -> PreparedCall:
    if not isinstance(item, dict):
        raise bad_request("invalid_call", f"batch[{index}] must be an object")
    call_type = item.get("type")
    if not isinstance(call_type, str) or call_type not in CALL_TYPES:
        raise bad_request("invalid_call", f"batch[{index}].type must be one of {_TYPES_TEXT}")
    return _prepare(item, call_type, index, shared)


def prepare_batch(body: object, receipt: Receipt, body_bytes: int) -> PreparedRequest:
    """Validate and stamp the body of ``POST /v1/batch`` or ``/v1/import``."""
    if not isinstance(body, dict):
        raise bad_request("invalid_body", "the body must be a JSON object")
    items = body.get("batch")
    if not isinstance(items, list):
        raise bad_request("invalid_batch", "batch must be an array of calls")
    sent_at = body.get("sentAt")
    if sent_at is not None and not isinstance(sent_at, str):
        raise bad_request("invalid_field", "sentAt must be a string")
    shared = _Shared(
        receipt,
        sent_at,
        _shared_object(body, "context"),
        _shared_object(body, "integrations"),
        check_size=body_bytes > MAX_CALL_BYTES,
    )
    if len(items) > MAX_BATCH_CALLS:
        return PreparedRequest(over_limit=len(items))
    return PreparedRequest([_batch_item(item, i, shared) for i, item in enumerate(items)])
