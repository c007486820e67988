"""Validation and stamping of tracking calls, before anything is recorded.

Every call of a request is validated and stamped before the recorder sees any, so a request
is recorded whole or (a 400) not at all.

Outcomes, as Segment gives them (default mode, ``lenient``):

* 400 (``TrackingError``), for the request: the body is not a JSON object, ``batch`` is not
  an array, the shared ``context``/``integrations``/``sentAt`` has the wrong type, a call
  over 32 KB (Segment refuses large payloads);
* 200 and dropped (``PreparedRequest.drops``: the reason and exactly what was wrong), for
  one call: a call that is not an object or has no known ``type``, a field of the wrong type
  (``userId`` as an object, ``properties`` as a string, ...), a ``messageId`` over 100
  characters, JSON nested too deeply to store; no userId and no anonymousId, a track call
  without ``event``, a group call without ``groupId``, an alias without ``previousId`` or
  ``userId``; duplicates are found later, by the recorder.

Strict mode (``lenient=False``, as RudderStack) refuses the whole request with 400 for any of
the first group of call problems instead of dropping the call.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
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
    "invalid_call": "the call is not an object or its type is not a Segment call type",
    "invalid_field": "a field has the wrong type, or the messageId is over 100 characters",
    "too_deep": "the call's JSON is nested too deeply to store",
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
# For the one-pass check of a call's fields: the types each field may have (None included),
# and for any other field every type orjson makes. A miss runs ``check_types`` for the message.
_NONE = type(None)
_JSON_TYPES = frozenset({str, int, float, bool, list, dict, _NONE})
_ALLOWED = {name: frozenset({*types, _NONE}) for name, types in _FIELD_TYPES.items()}
_MISSING: Any = object()  # a field the call did not have


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
class PreparedRequest:
    """The validated calls of one request, column by column, in the order sent.

    Columns rather than one object per call: a batch of 2,000 calls is built, recorded and
    (with receiver workers) pickled back to the front process without 2,000 small objects.
    An accepted call has its stamped JSON in ``lines`` (read it with ``line``); a dropped one
    has ``b""`` there and its reason and detail in ``drops``. ``generated`` holds the calls
    whose messageId the receiver made up (never looked up for duplicates).

    Pickled, the lines travel as one bytes object (``packed``: the lines joined by newlines,
    and where each ends): the front process slices out only the few it keeps for the
    Debugger, and archives the whole when every call was accepted.
    """

    call_types: list[str] = field(default_factory=list)
    message_ids: list[str | None] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    drops: dict[int, tuple[str, str]] = field(default_factory=dict)
    generated: set[int] = field(default_factory=set)
    over_limit: int = 0  # calls of a batch dropped for being over MAX_BATCH_CALLS
    packed: tuple[bytes, list[int]] | None = None  # (joined lines, cumulative lengths)

    def __len__(self) -> int:
        return len(self.call_types)

    def __reduce__(self) -> tuple[Any, ...]:
        packed = self.packed or (b"\n".join(self.lines), list(accumulate(map(len, self.lines))))
        columns: tuple[object, ...] = (
            self.call_types, self.message_ids, [], self.drops, self.generated
        )
        return (PreparedRequest, (*columns, self.over_limit, packed))

    def line(self, index: int) -> bytes:
        """The stamped JSON of call ``index`` (b"" for a dropped one)."""
        if self.packed is None:
            return self.lines[index]
        joined, ends = self.packed
        start = ends[index - 1] + index if index else 0
        return joined[start : ends[index] + index]

    def joined_lines(self, indices: Sequence[int]) -> bytes:
        """The stamped JSON of the calls ``indices``, one line each (no final newline)."""
        if self.packed is not None and len(indices) == len(self) and not self.drops:
            return self.packed[0]
        if self.packed is None and len(indices) == len(self):
            return b"\n".join(self.lines)
        return b"\n".join([self.line(i) for i in indices])

    def accept(self, call_type: str, message_id: str, line: bytes, generated: bool) -> None:
        if generated:
            self.generated.add(len(self.call_types))
        self.call_types.append(call_type)
        self.message_ids.append(message_id)
        self.lines.append(line)

    def drop(self, call_type: str, message_id: str | None, reason: str, detail: str) -> None:
        self.drops[len(self.call_types)] = (reason, detail)
        self.call_types.append(call_type)
        self.message_ids.append(message_id)
        self.lines.append(b"")


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
    lenient: bool = True  # a bad call is dropped (Segment) rather than refused (strict)


def _merge(call: dict[str, Any], name: str, shared: dict[str, Any] | None) -> None:
    if shared:
        own = call.get(name)
        call[name] = {**shared, **own} if own else shared


_CALL_PROBLEMS = frozenset({"invalid_call", "invalid_field", "too_deep"})


def _dropped(call: object, call_type: str, err: TrackingError, out: PreparedRequest) -> None:
    """A call Segment answers 200 for and drops, with what was wrong with it."""
    own = call if isinstance(call, dict) else {}
    message_id = own.get("messageId")
    kept_id = message_id if isinstance(message_id, str) else None
    out.drop(call_type, kept_id, err.code, err.message)


def _prepare(
    call: dict[str, Any], call_type: str, index: int | None, s: _Shared, out: PreparedRequest
) -> None:
    try:
        _checked(call, call_type, index, s, out)
    except TrackingError as err:
        if err.code in _CALL_PROBLEMS:
            _size_first(call, index, s)
        if s.lenient and err.code in _CALL_PROBLEMS:
            _dropped(call, call_type, err, out)
            return
        raise


def _size_first(call: object, index: int | None, s: _Shared) -> None:
    """A call over 32 KB is refused (``too_large``: a 400 for the request) whatever else is
    wrong with it, as a call right in every other way is: the size is checked before a bad
    call is dropped (a bad type or field had made the same call a 200)."""
    if not s.check_size or not isinstance(call, dict):
        return
    try:
        _check_size(call, index)
    except TrackingError as err:
        if err.code != "too_deep":  # (too deep to measure: dropped as such)
            raise


def _check_size(call: dict[str, Any], index: int | None) -> None:
    if len(_dump(call, index)) > MAX_CALL_BYTES:
        raise bad_request("too_large", f"{_where(index)}call is over {MAX_CALL_BYTES:,} bytes")


def _check_fields(call: dict[str, Any], index: int | None) -> str | None:
    """``check_types`` in one pass (one lookup per field); the call's messageId, if any."""
    allowed = _ALLOWED.get
    for name, value in call.items():
        if type(value) not in allowed(name, _JSON_TYPES):
            check_types(call, index)  # raises with the field's message
            break
    message_id = call.get("messageId")
    if message_id is not None and len(message_id) > MAX_MESSAGE_ID_CHARS:
        message = f"messageId is longer than {MAX_MESSAGE_ID_CHARS} characters"
        raise bad_request("invalid_field", _where(index) + message)
    return message_id


def _checked(
    call: dict[str, Any], call_type: str, index: int | None, s: _Shared, out: PreparedRequest
) -> None:
    """Validate, stamp and serialise one call into ``out`` (or raise before adding anything)."""
    message_id = _check_fields(call, index) or None
    reason = drop_reason(call, call_type)
    if reason:
        if s.check_size:
            _check_size(call, index)
        out.drop(call_type, message_id, reason, DROP_REASONS[reason])
        return
    # Serialised once, after stamping: stamping and merging only add to a call, so a stamped
    # call within the limit was within it as sent; only a bigger one is measured as sent.
    as_sent = call.copy() if s.check_size else None
    generated = message_id is None
    if generated:
        message_id = call["messageId"] = f"api-{uuid.uuid4()}"
    if s.context:
        _merge(call, "context", s.context)
    if s.integrations:
        _merge(call, "integrations", s.integrations)
    s.receipt.stamp(call, s.sent_at)
    try:
        line = _dump(call, index)
    except TrackingError:
        if as_sent is not None:  # a dropped call is shown as it was sent
            call.clear()
            call.update(as_sent)
        raise
    if as_sent is not None and len(line) > MAX_CALL_BYTES:
        _check_size(as_sent, index)
    out.accept(call_type, message_id, line, generated)  # type: ignore[arg-type]


def prepare_single(
    body: object, call_type: str, receipt: Receipt, *, lenient: bool = True
) -> PreparedRequest:
    """Validate and stamp the body of ``POST /v1/<call_type>`` (already within 32 KB)."""
    if not isinstance(body, dict):
        raise bad_request("invalid_body", "the body must be a JSON object")
    body.pop("writeKey", None)
    body["type"] = call_type
    out = PreparedRequest()
    _prepare(body, call_type, None, _Shared(receipt, lenient=lenient), out)
    return out


def _shared_object(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise bad_request("invalid_field", f"{name} must be an object")
    return value


def _bad_item(item: object, index: int, shared: _Shared, out: PreparedRequest) -> None:
    """A batch item that is not an object or has no known type: dropped, or (strict) a 400."""
    named = ""
    if isinstance(item, dict):
        call_type = item.get("type")
        named = call_type if isinstance(call_type, str) else ""
        problem = bad_request("invalid_call", f"batch[{index}].type must be one of {_TYPES_TEXT}")
    else:
        problem = bad_request("invalid_call", f"batch[{index}] must be an object")
    _size_first(item, index, shared)
    if not shared.lenient:
        raise problem
    _dropped(item, named, problem, out)


def prepare_batch(
    body: object, receipt: Receipt, body_bytes: int, *, lenient: bool = True
) -> PreparedRequest:
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
        lenient=lenient,
    )
    if len(items) > MAX_BATCH_CALLS:
        return PreparedRequest(over_limit=len(items))
    out = PreparedRequest()
    _prepare_calls(items, shared, out)
    return out


# Calls the one-pass path takes: a group needs a groupId, an alias a previousId (reference path).
_FAST_TYPES = frozenset({"track", "identify", "page", "screen"})
_NO_ID = (None, "")
# each call type's one str object: a batch's types pickle as one string and references to it
_TYPE_NAMES = {name: name for name in CALL_TYPES}


def _prepare_calls(items: list[Any], s: _Shared, out: PreparedRequest) -> None:
    """Every item of a batch into ``out``, in order: most in one pass, the others by
    ``_prepare`` (the reference path, which also words every problem).

    One pass, for the call nearly every client sends: a track, identify, page or screen call
    whose fields have the right types, with its own messageId (at most 100 characters), a
    userId or anonymousId, a track's event, no stamps of its own (``receivedAt``,
    ``originalTimestamp``) and no batch ``context``/``integrations`` to merge. It makes the
    checks ``_prepare`` makes, in one loop without a function call per step (about a quarter
    of the CPU per call), and changes a call only once every check has passed; any other call
    goes to ``_prepare`` untouched. Stamping only adds to a call, so the size as sent is
    measured only for a stamped call over the limit, once the stamps are taken off again.
    """
    allowed, json_types, dumps = _ALLOWED.get, _JSON_TYPES, orjson.dumps
    types, ids, lines = out.call_types, out.message_ids, out.lines
    receipt, batch_sent_at = s.receipt, s.sent_at
    received, corrected = receipt.iso, receipt.corrected
    plain = not s.context and not s.integrations
    for index, call in enumerate(items):
        named = call.get("type") if isinstance(call, dict) else None
        call_type = _TYPE_NAMES.get(named) if isinstance(named, str) else None
        if call_type is None:
            _bad_item(call, index, s, out)
            continue
        fast = plain and call_type in _FAST_TYPES
        if fast:
            for name, value in call.items():
                if type(value) not in allowed(name, json_types):
                    fast = False
                    break
        message_id = call.get("messageId") if fast else None
        if not (
            message_id
            and len(message_id) <= MAX_MESSAGE_ID_CHARS
            and (call.get("userId") not in _NO_ID or call.get("anonymousId") not in _NO_ID)
            and (call_type != "track" or call.get("event"))
            and "receivedAt" not in call
            and "originalTimestamp" not in call
        ):
            _prepare(call, call_type, index, s, out)
            continue
        call["receivedAt"] = received  # stamped as ``Receipt.stamp`` does
        sent_at = own_sent_at = call.get("sentAt", _MISSING)
        if sent_at is _MISSING or sent_at is None:
            sent_at = None
            if batch_sent_at is not None:
                sent_at = call["sentAt"] = batch_sent_at
        original = call.get("timestamp", _MISSING)
        if original is _MISSING or original is None:
            call["timestamp"] = received
        else:
            call["originalTimestamp"] = original
            call["timestamp"] = corrected(original, sent_at)
        try:
            line = dumps(call)
        except TypeError:  # orjson's recursion limit: as ``_prepare`` does
            err = bad_request("too_deep", f"{_where(index)}JSON is nested too deeply")
            if not s.lenient:
                raise err from None
            out.drop(call_type, message_id, err.code, err.message)
            continue
        if s.check_size and len(line) > MAX_CALL_BYTES:
            _unstamp(call, own_sent_at, original)
            _check_size(call, index)
        types.append(call_type)
        ids.append(message_id)
        lines.append(line)


def _unstamp(call: dict[str, Any], own_sent_at: object, original: object) -> None:
    """Take the stamps of the one-pass path off ``call`` (which had no ``receivedAt`` and no
    ``originalTimestamp``): added fields removed (they came last), changed ones restored."""
    del call["receivedAt"]
    call.pop("originalTimestamp", None)
    for name, value in (("sentAt", own_sent_at), ("timestamp", original)):
        if value is _MISSING:
            call.pop(name, None)
        else:
            call[name] = value
