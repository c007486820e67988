"""The Tracking API client against httpx.MockTransport: what is sent, and how answers map."""

from __future__ import annotations

import base64
import gzip

import httpx
import orjson
import pytest

from segbridge.apps.segment.client import TrackingClient, stamp
from segbridge.apps.segment.endpoints import resolve_endpoint
from segbridge.core.errors import FatalError, RetriableError
from segbridge.core.secrets import Secret

KEY = "k3yOfThirtyTwoCharactersExactly1"


def client_answering(status: int, headers: dict[str, str] | None = None,
                     seen: list[httpx.Request] | None = None) -> TrackingClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, headers=headers, json={"success": True})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    return TrackingClient(resolve_endpoint("us", None), Secret(KEY), http)


def test_a_call_is_sent_with_basic_auth_keeping_the_colon_and_json() -> None:
    seen: list[httpx.Request] = []
    client_answering(200, seen=seen).send("identify", stamp({"userId": "u1"}))
    request = seen[0]
    assert str(request.url) == "https://api.segment.io/v1/identify"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(
        f"{KEY}:".encode()).decode()
    body = orjson.loads(request.content)
    assert body["userId"] == "u1"
    assert body["messageId"].startswith("segbridge-")
    assert body["context"]["library"]["name"] == "segbridge"
    assert body["sentAt"].endswith("Z")


def test_large_bodies_are_gzipped() -> None:
    seen: list[httpx.Request] = []
    calls = [{"type": "track", "userId": f"u{i}", "event": "Order"} for i in range(200)]
    client_answering(200, seen=seen).send("batch", {"batch": calls})
    assert seen[0].headers["Content-Encoding"] == "gzip"
    assert len(orjson.loads(gzip.decompress(seen[0].content))["batch"]) == 200


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_success(status: int) -> None:
    assert client_answering(status).send("track", {"userId": "u", "event": "e"}).status_code \
        == status


@pytest.mark.parametrize(("status", "cause"), [(400, "http_400"), (401, "write_key_rejected"),
                                               (403, "write_key_rejected"),
                                               (404, "wrong_endpoint"), (413, "too_large"),
                                               (418, "http_error")])
def test_other_4xx_are_fatal_and_named(status: int, cause: str) -> None:
    with pytest.raises(FatalError) as caught:
        client_answering(status).send("identify", {"userId": "u"})
    assert caught.value.cause == cause
    assert caught.value.status == status
    assert KEY not in caught.value.message


def test_429_is_retriable_and_honours_retry_after() -> None:
    with pytest.raises(RetriableError) as caught:
        client_answering(429, {"Retry-After": "7"}).send("identify", {"userId": "u"})
    assert caught.value.cause == "rate_limited"
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retriable(status: int) -> None:
    with pytest.raises(RetriableError) as caught:
        client_answering(status).send("identify", {"userId": "u"})
    assert caught.value.cause == "server_error"


def test_eu_region_and_custom_endpoints_resolve() -> None:
    assert resolve_endpoint("eu", None).url("batch") == \
        "https://events.eu1.segmentapis.com/v1/batch"
    custom = resolve_endpoint(None, "http://127.0.0.1:8000/sandbox/v1/")
    assert custom.url("identify") == "http://127.0.0.1:8000/sandbox/v1/identify"
    assert custom.settings_url("k") == "http://127.0.0.1:8000/sandbox/v1/projects/k/settings"
    assert resolve_endpoint("us", None).settings_url("k") == \
        "https://cdn.segment.com/v1/projects/k/settings"


def client_refusing(status: int, body: bytes) -> TrackingClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"Content-Type": "application/json"})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    return TrackingClient(resolve_endpoint("us", None), Secret(KEY), http)


@pytest.mark.parametrize("body", [
    b'{"success": false, "code": "invalid_field", "message": "batch[3].userId must be a string"}',
    b'{"success": false, "error": {"code": "invalid_field",'
    b' "message": "batch[3].userId must be a string"}}',
], ids=["segment-shape", "nested-shape"])
def test_a_refusal_says_what_the_receiver_said(body: bytes) -> None:
    with pytest.raises(FatalError) as caught:
        client_refusing(400, body).send("batch", {"batch": []})
    assert caught.value.cause == "http_400"
    assert caught.value.message.endswith(
        "The receiver said: invalid_field: batch[3].userId must be a string")


@pytest.mark.parametrize("body", [b"", b"<html>Bad Request</html>", b"[1, 2]",
                                  b'{"message": 5}', b'{"success": false}'])
def test_a_refusal_without_a_readable_reason_keeps_segbridges_words(body: bytes) -> None:
    with pytest.raises(FatalError) as caught:
        client_refusing(400, body).send("track", {"userId": "u", "event": "e"})
    assert "The receiver said" not in caught.value.message


def test_the_receivers_words_are_bounded_and_printable() -> None:
    body = orjson.dumps({"code": "x", "message": "line\nbreak\x1b[31m" + "y" * 1000})
    with pytest.raises(FatalError) as caught:
        client_refusing(400, body).send("track", {"userId": "u", "event": "e"})
    said = caught.value.message.split("The receiver said: ", 1)[1]
    assert len(said) == 200
    assert said.isprintable()
