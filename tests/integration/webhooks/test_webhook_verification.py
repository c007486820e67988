"""Who may send to a webhook's URL: each verification kind, Segment's own X-Signature
included; refused requests get 401, are counted, and nothing of them is stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.conftest import Server
from tests.integration.flows.conftest import Receiver
from tests.integration.webhooks.conftest import Hook, hook_flow, listener, post

BODY = orjson.dumps({"order_id": 1, "customer_id": "c1", "total": "1.50"})
SECRET = "shared-secret-3f9a"


def with_secret(server: Server, receiver: Receiver, verification: dict[str, Any]) -> Hook:
    hook = hook_flow(server, receiver, verification=verification)
    answer = server.api.put(f"/api/v1/flows/{hook.flow['id']}/webhook/secret",
                            json={"secret": SECRET})
    assert answer.status_code == 200, answer.text
    assert answer.json()["has_secret"] is True
    assert SECRET not in answer.text
    return hook


def nothing_stored(server: Server, hook: Hook, rejected: int) -> None:
    counts = listener(server, hook.flow["id"])
    assert (counts["rejected"], counts["verified"], counts["records"], counts["waiting"]) \
        == (rejected, 0, 0, 0), counts
    payloads = server.api.get(f"/api/v1/flows/{hook.flow['id']}/webhook/payloads").json()
    assert payloads == []


def hmac_of(algorithm: str, message: bytes) -> bytes:
    return hmac.new(SECRET.encode(), message, getattr(hashlib, algorithm)).digest()


def test_segments_x_signature_is_verified_and_a_wrong_one_refused(
    server: Server, receiver: Receiver, shop: dict[str, Any],
) -> None:
    hook = with_secret(server, receiver, {"kind": "hmac"})  # Segment's: X-Signature, SHA-1, hex
    good = hmac_of("sha1", BODY).hex()
    wrong = hmac.new(b"another secret", BODY, hashlib.sha1).hexdigest()
    refused = [post(server, hook.path, BODY, **{"X-Signature": wrong}),
               post(server, hook.path, BODY),
               post(server, hook.path, BODY + b" ", **{"X-Signature": good})]  # body changed
    assert [r.status_code for r in refused] == [401, 401, 401]
    assert "X-Signature" in refused[0].json()["error"]["message"]
    assert good not in refused[2].text and SECRET not in refused[2].text
    nothing_stored(server, hook, rejected=3)
    accepted = post(server, hook.path, BODY, **{"X-Signature": good})
    assert accepted.status_code == 200, accepted.text
    assert listener(server, hook.flow["id"])["verified"] == 1


def test_shopify_style_base64_sha256_in_its_own_header(
    server: Server, receiver: Receiver, shop: dict[str, Any],
) -> None:
    hook = with_secret(server, receiver, {"kind": "hmac", "algorithm": "sha256",
                                          "encoding": "base64",
                                          "header": "X-Shopify-Hmac-Sha256"})
    good = base64.b64encode(hmac_of("sha256", BODY)).decode()
    sha1 = base64.b64encode(hmac_of("sha1", BODY)).decode()
    assert post(server, hook.path, BODY, **{"X-Shopify-Hmac-Sha256": sha1}).status_code == 401
    assert post(server, hook.path, BODY, **{"X-Signature": good}).status_code == 401
    assert post(server, hook.path, BODY, **{"X-Shopify-Hmac-Sha256": good}).status_code == 200


def test_a_signed_timestamp_outside_the_tolerance_is_a_replay(
    server: Server, receiver: Receiver, shop: dict[str, Any],
) -> None:
    hook = with_secret(server, receiver, {
        "kind": "hmac", "algorithm": "sha256", "header": "X-Hub-Signature-256",
        "prefix": "sha256=", "timestamp_header": "X-Timestamp", "tolerance_seconds": 60})

    def signed(moment: int) -> dict[str, str]:
        digest = hmac_of("sha256", f"{moment}.".encode() + BODY).hex()
        return {"X-Hub-Signature-256": f"sha256={digest}", "X-Timestamp": str(moment)}

    now = int(time.time())
    old = post(server, hook.path, BODY, **signed(now - 3600))
    assert old.status_code == 401
    assert "replayed" in old.json()["error"]["message"]
    later = signed(now)
    later["X-Timestamp"] = str(now + 1)  # the signature was made for another time
    assert post(server, hook.path, BODY, **later).status_code == 401
    assert post(server, hook.path, BODY, **signed(now)).status_code == 200
    assert listener(server, hook.flow["id"])["rejected"] == 2


@pytest.mark.parametrize(("verification", "good", "bad"), [
    pytest.param({"kind": "basic", "username": "shop"},
                 {"Authorization": "Basic " + base64.b64encode(f"shop:{SECRET}".encode())
                  .decode()},
                 {"Authorization": "Basic " + base64.b64encode(b"shop:guess").decode()},
                 id="basic"),
    pytest.param({"kind": "token"}, {"Authorization": f"Bearer {SECRET}"},
                 {"Authorization": "Bearer guess"}, id="bearer token"),
    pytest.param({"kind": "token", "header": "X-Api-Key"}, {"X-Api-Key": SECRET},
                 {"Authorization": f"Bearer {SECRET}"}, id="token in a header"),
])
def test_basic_and_token_verification(
    server: Server, receiver: Receiver, shop: dict[str, Any], verification: dict[str, Any],
    good: dict[str, str], bad: dict[str, str],
) -> None:
    hook = with_secret(server, receiver, verification)
    assert post(server, hook.path, BODY, **bad).status_code == 401
    nothing_stored(server, hook, rejected=1)
    assert post(server, hook.path, BODY, **good).status_code == 200


def test_a_verified_listener_without_its_secret_refuses_everything(
    server: Server, receiver: Receiver, shop: dict[str, Any],
) -> None:
    hook = hook_flow(server, receiver, verification={"kind": "hmac"})
    answer = post(server, hook.path, BODY, **{"X-Signature": hmac_of("sha1", BODY).hex()})
    assert answer.status_code == 401
    assert "secret is not set" in answer.json()["error"]["message"]


def test_an_unreadable_body_is_a_400_and_a_body_over_the_limit_a_413(
    server: Server, receiver: Receiver, shop: dict[str, Any],
) -> None:
    hook = hook_flow(server, receiver, max_body_bytes=1000)
    broken = post(server, hook.path, b'{"order_id": ')
    assert broken.status_code == 400
    assert "not valid JSON" in broken.json()["error"]["message"]
    assert post(server, hook.path, b"[1, 2]").status_code == 400
    big = orjson.dumps([{"order_id": i, "customer_id": "c"} for i in range(100)])
    declared = post(server, hook.path, big)
    assert declared.status_code == 413
    assert "limit of 1,000 bytes" in declared.json()["error"]["message"]

    def chunks() -> Any:  # no Content-Length: the limit is found while reading
        for i in range(0, len(big), 100):
            yield big[i:i + 100]

    streamed = httpx.post(f"{server.base_url}{hook.path}", content=chunks(), trust_env=False,
                          headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    nothing_stored(server, hook, rejected=4)
