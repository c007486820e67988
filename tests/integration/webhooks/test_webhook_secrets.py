"""A listener's secret under master key rotation: re-encrypted with the new key, so pruning
the old key leaves the webhook verifying as before; and never shown."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
from sqlalchemy import select

from segbridge.keys import prune, rotate
from segbridge.storage.webhook_models import WebhookListener
from tests.integration.conftest import Server
from tests.integration.flows.conftest import Receiver
from tests.integration.webhooks.conftest import hook_flow, listener, post

SECRET = "rotate-me-secret-91"
BODY = orjson.dumps({"order_id": 1, "customer_id": "c1"})


def test_a_listener_secret_survives_rotation_and_pruning_of_the_master_key(
    server: Server, receiver: Receiver, shop: dict[str, Any],
) -> None:
    hook = hook_flow(server, receiver, verification={"kind": "hmac"})
    flow_id = hook.flow["id"]
    assert server.api.put(f"/api/v1/flows/{flow_id}/webhook/secret",
                          json={"secret": SECRET}).status_code == 200
    runtime = server.runtime
    for change in (rotate, rotate, prune):  # the first key is gone from the ring after these
        change(runtime.settings, runtime.db, runtime.vault)
    with runtime.db.session() as session:
        key_id = session.scalar(select(WebhookListener.secret_key_id))
        ciphertext = session.scalar(select(WebhookListener.secret_ciphertext))
    assert key_id == runtime.vault.primary_key_id
    assert SECRET not in str(ciphertext)
    server.app.state.webhooks.intake.forget(flow_id)  # read the secret again
    signature = hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest()
    assert post(server, hook.path, BODY, **{"X-Signature": signature}).status_code == 200
    assert SECRET not in orjson.dumps(listener(server, flow_id)).decode()
