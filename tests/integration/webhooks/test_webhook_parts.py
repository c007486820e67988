"""The webhook's pure parts (no I/O): what a body gives, and what verifies. (They sit with
the webhook tests; they would fit tests/unit/apps/webhook as well.)"""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson
import pytest

from segbridge.apps.webhook.bodies import MAX_RECORDS, Unreadable, records_of
from segbridge.apps.webhook.document import Verification
from segbridge.apps.webhook.verification import Unverified, signature, verify
from segbridge.core.secrets import Secret

SECRET = Secret("s3cret")
BODY = b'{"a":1}'
NOW = 1_790_000_000.0


@pytest.mark.parametrize(("body", "kind", "records"), [
    (b'{"a": 1}', "application/json", [{"a": 1}]),
    (b'[{"a": 1}, {"a": 2}]', "", [{"a": 1}, {"a": 2}]),
    (b'{"batch": [{"a": 1}], "sentAt": "x"}', "application/json", [{"a": 1}]),
    (b'{"batch": "not a list", "a": 1}', "application/json", [{"batch": "not a list", "a": 1}]),
    (b'{"a": 1}\n\n{"a": 2}\n', "application/x-ndjson", [{"a": 1}, {"a": 2}]),
    (b'{"a": 1}\n{"a": 2}', "text/plain", [{"a": 1}, {"a": 2}]),  # NDJSON, type not said
    (b"a=1&b=&a=2&c=%C3%A9", "application/x-www-form-urlencoded; charset=utf-8",
     [{"a": ["1", "2"], "b": "", "c": "é"}]),
])
def test_a_body_gives_one_record_per_item(body: bytes, kind: str,
                                          records: list[dict[str, object]]) -> None:
    assert records_of(body, kind) == records


@pytest.mark.parametrize(("body", "kind", "says"), [
    (b"  ", "application/json", "The body is empty"),
    (b"[]", "application/json", "The body has no records"),
    (b'[{"a": 1}, 2]', "application/json", "Item 2 is not a JSON object"),
    (b'"text"', "application/json", "neither an object nor an array"),
    (b'{"a": 1}\nnope', "application/x-ndjson", "Line 2 is not valid JSON"),
    (b'{"a": 1}\n[1]', "application/x-ndjson", "Line 2 is not a JSON object"),
    (b'{"a": ', "application/json", "not valid JSON (line 1, column"),
    (b"a=1&&=", "application/x-www-form-urlencoded", "The form body is not valid"),
    (orjson.dumps([{}] * (MAX_RECORDS + 1)), "application/json", "send at most 10000"),
])
def test_an_unreadable_body_says_where_and_never_what(body: bytes, kind: str,
                                                      says: str) -> None:
    with pytest.raises(Unreadable) as refused:
        records_of(body, kind)
    assert says in refused.value.reason


def test_segment_signatures_are_hex_hmac_sha1_in_either_case() -> None:
    rule = Verification(kind="hmac")
    sent = hmac.new(b"s3cret", BODY, hashlib.sha1).hexdigest()
    assert signature(rule, SECRET, BODY) == sent
    verify(rule, SECRET, {"x-signature": sent.upper()}, BODY, NOW)
    with pytest.raises(Unverified, match="does not match"):
        verify(rule, SECRET, {"x-signature": sent[:-1] + "0"}, BODY + b" ", NOW)


def test_a_base64_signature_with_a_prefix_and_a_timestamp_in_milliseconds() -> None:
    rule = Verification(kind="hmac", algorithm="sha256", encoding="base64", prefix="v1=",
                        header="X-Sig", timestamp_header="X-Time", tolerance_seconds=30)
    stamp = str(int(NOW * 1000))
    digest = hmac.new(b"s3cret", stamp.encode() + b"." + BODY, hashlib.sha256).digest()
    sent = "v1=" + base64.b64encode(digest).decode()
    verify(rule, SECRET, {"x-sig": sent, "x-time": stamp}, BODY, NOW + 29)
    with pytest.raises(Unverified, match="more than 30 s from now"):
        verify(rule, SECRET, {"x-sig": sent, "x-time": stamp}, BODY, NOW + 31)
    with pytest.raises(Unverified, match="not a Unix time"):
        verify(rule, SECRET, {"x-sig": sent, "x-time": "yesterday"}, BODY, NOW)


def test_refusals_name_the_header_never_a_value() -> None:
    rule = Verification(kind="token", header="X-Api-Key")
    with pytest.raises(Unverified) as refused:
        verify(rule, SECRET, {"x-api-key": "guess-value"}, BODY, NOW)
    assert "X-Api-Key" in refused.value.reason
    assert "guess-value" not in refused.value.reason and "s3cret" not in refused.value.reason
    basic = Verification(kind="basic", username="shop")
    with pytest.raises(Unverified, match="not valid base64"):
        verify(basic, SECRET, {"authorization": "Basic !!!"}, BODY, NOW)
    good = base64.b64encode(b"shop:s3cret").decode()
    verify(basic, SECRET, {"authorization": f"basic {good}"}, BODY, NOW)
