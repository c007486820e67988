"""A webhook flow's listener: its URL shown once and rotated (the old one stops at once), its
secret write-only, and nothing of it reachable from another account."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import httpx
import orjson

from segbridge.accounts import service as accounts
from segbridge.workers import Workers
from tests.integration.conftest import Server
from tests.integration.flows.conftest import Receiver
from tests.integration.flows.test_flow_runs import create_flow
from tests.integration.webhooks.conftest import (
    hook_flow,
    listener,
    post,
    wait_for_events,
    webhook_flow,
)

BODY = orjson.dumps({"order_id": 1, "customer_id": "c1"})


def test_the_url_is_shown_once_and_a_rotation_stops_the_old_one_at_once(
    server: Server, receiver: Receiver, shop: dict[str, Any],
) -> None:
    hook = hook_flow(server, receiver)
    token = hook.path.rsplit("/", 1)[1]
    assert len(token) >= 40
    shown = listener(server, hook.flow["id"])
    assert shown["url"] is None and token not in orjson.dumps(shown).decode()
    again = server.api.post(f"/api/v1/flows/{hook.flow['id']}/webhook")
    assert again.status_code == 409 and "rotate" in again.json()["error"]["message"]
    assert post(server, hook.path, BODY).status_code == 200

    rotated = server.api.post(f"/api/v1/flows/{hook.flow['id']}/webhook/rotate")
    assert rotated.status_code == 200, rotated.text
    new_path = urlparse(rotated.json()["url"]).path
    assert new_path != hook.path
    old = post(server, hook.path, BODY)
    assert old.status_code == 404
    assert "rotated" in old.json()["error"]["message"]
    assert post(server, new_path, BODY).status_code == 200
    assert post(server, "/hooks/not-a-token", BODY).status_code == 404
    counts = listener(server, hook.flow["id"])
    assert (counts["received"], counts["records"], counts["rotated_at"] is not None) \
        == (2, 2, True)


def test_another_account_cannot_read_rotate_or_set_a_listener(
    server: Server, receiver: Receiver, shop: dict[str, Any],
) -> None:
    hook = hook_flow(server, receiver)
    flow_id = hook.flow["id"]
    with server.runtime.db.session() as session:
        other = accounts.create_account(session, "Other")
        user = accounts.create_user(session, other.id, "other@x.example", None, is_admin=True)
        token = accounts.issue_token(session, user, kind="api", name="other")
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"},
                      trust_env=False) as api:
        answers = [api.get(f"/api/v1/flows/{flow_id}/webhook"),
                   api.post(f"/api/v1/flows/{flow_id}/webhook/rotate"),
                   api.put(f"/api/v1/flows/{flow_id}/webhook/secret", json={"secret": "x"}),
                   api.get(f"/api/v1/flows/{flow_id}/webhook/payloads"),
                   api.post(f"/api/v1/flows/{flow_id}/webhook")]
    assert [a.status_code for a in answers] == [404] * 5
    assert post(server, hook.path, BODY).status_code == 200  # its URL still works
    assert listener(server, flow_id)["has_secret"] is False


def test_a_listener_needs_a_webhook_flow_and_the_document_is_checked(
    server: Server, receiver: Receiver, shop: dict[str, Any], tmp_path: Any,
) -> None:
    from tests.integration.flows.conftest import orders, segment_connection, track_flow, write_csv

    connection = segment_connection(server, receiver)
    csv_flow = create_flow(server, track_flow("Csv", write_csv(tmp_path / "o.csv", orders(2)),
                                              connection["name"]))
    refused = server.api.post(f"/api/v1/flows/{csv_flow['id']}/webhook")
    assert refused.status_code == 409 and "type: webhook" in refused.json()["error"]["message"]
    doc = webhook_flow("Bad", connection["name"], verification={"kind": "basic"},
                       max_body_bytes=0)
    answer = server.api.post("/api/v1/flows", json=doc)
    assert answer.status_code == 422, answer.text
    fields = {p["field"] for p in answer.json()["error"]["details"]}
    assert {"export.verification.username", "export.max_body_bytes"} <= fields, fields


def test_a_deleted_flow_takes_its_url_and_waiting_records_with_it(
    server: Server, receiver: Receiver, shop: dict[str, Any],
) -> None:
    from sqlalchemy import func, select

    from segbridge.storage.webhook_models import WebhookRecord

    hook = hook_flow(server, receiver, batch={"max_seconds": 3600})  # its records wait
    assert post(server, hook.path, BODY).status_code == 200
    with server.runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(WebhookRecord)) == 1
    assert server.api.delete(f"/api/v1/flows/{hook.flow['id']}").status_code == 204
    assert post(server, hook.path, BODY).status_code == 404
    with server.runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(WebhookRecord)) == 0


def test_sensitive_fields_are_masked_in_the_payloads_kept_and_sent_as_received(
    server: Server, receiver: Receiver, workers: Workers, shop: dict[str, Any],
) -> None:
    hook = hook_flow(server, receiver, sensitive_fields=["customer_id", "card.number"])
    body = orjson.dumps([{"order_id": 7, "customer_id": "c-secret-7", "total": "9.50",
                          "card": {"number": "4111111111111111", "brand": "visa"}}])
    assert post(server, hook.path, body).status_code == 200

    kept = server.api.get(f"/api/v1/flows/{hook.flow['id']}/webhook/payloads").json()
    assert [p["payload"] for p in kept] == [
        {"order_id": 7, "customer_id": "****", "total": "9.50",
         "card": {"number": "****", "brand": "visa"}}]
    page = server.api.get(f"/flows/{hook.flow['id']}/webhook")
    assert "4111111111111111" not in page.text and "c-secret-7" not in page.text
    [event] = wait_for_events(receiver, 1)
    assert event["userId"] == "c-secret-7"  # the record itself is sent as received
