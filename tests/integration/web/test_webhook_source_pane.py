"""The flow builder's Add source pane offers Webhook: how requests are verified (only the
fields of the chosen kind are saved), the body limit and the batches, saved as the flow
document's ``type: webhook`` export; the builder then shows the Webhook box, the pane shows
the values again, and a refused value is named at its field with nothing changed."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.integration.conftest import Server
from tests.integration.flows.conftest import shop  # noqa: F401
from tests.integration.web.test_flow_builder import PANE, flow_doc, new_flow, post
from tests.support import builder

browser = builder.browser  # the fixture

SHOPIFY = {"app": "webhook", "export.verification.kind": "hmac",
           "export.verification.algorithm": "sha256", "export.verification.encoding": "base64",
           "export.verification.header": "X-Shopify-Hmac-Sha256",
           "export.verification.prefix": "", "export.verification.timestamp_header": "",
           "export.verification.tolerance_seconds": "",
           "export.verification.username": "typed for basic, not saved for hmac",
           "export.max_body_bytes": "2048", "export.batch.max_records": "100",
           "export.batch.max_seconds": "0.5", "export.sensitive_fields": "email\ncard.number",
           "export.key_field": "id"}


def test_a_webhook_source_is_saved_and_the_builder_shows_the_webhook_box(
    server: Server, browser: httpx.Client, shop: dict[str, Any],  # noqa: F811
) -> None:
    flow_id = new_flow(browser, shop)
    choose = browser.get(f"/flows/{flow_id}/source", headers=PANE)
    assert 'id="source-app-webhook"' in choose.text
    pane = browser.get(f"/flows/{flow_id}/source?app=webhook", headers=PANE)
    assert pane.status_code == 200
    assert '<option value="hmac" selected>' in pane.text  # Segment's X-Signature first

    saved = post(browser, f"/flows/{flow_id}/source", SHOPIFY, headers=PANE)

    assert saved.status_code == 200, saved.text
    assert flow_doc(server, flow_id)["export"] == {
        "type": "webhook",
        "verification": {"kind": "hmac", "algorithm": "sha256", "encoding": "base64",
                         "header": "X-Shopify-Hmac-Sha256"},
        "max_body_bytes": 2048, "batch": {"max_records": 100, "max_seconds": 0.5},
        "sensitive_fields": ["email", "card.number"], "key_field": "id"}
    page = browser.get(f"/flows/{flow_id}")
    assert 'id="webhook-listener"' in page.text  # the box: create the URL, set the secret
    again = browser.get(f"/flows/{flow_id}/source", headers=PANE)
    assert '<option value="sha256" selected>' in again.text
    assert '<option value="base64" selected>' in again.text
    assert 'value="X-Shopify-Hmac-Sha256"' in again.text and 'value="0.5"' in again.text
    assert "email\ncard.number</textarea>" in again.text
    created = server.api.post(f"/api/v1/flows/{flow_id}/webhook")
    assert created.status_code in (200, 201), created.text  # the saved source takes a URL


def test_segment_s_signature_is_the_default_and_basic_keeps_only_its_user(
    server: Server, browser: httpx.Client, shop: dict[str, Any],  # noqa: F811
) -> None:
    flow_id = new_flow(browser, shop)
    blank = {key: "" for key in SHOPIFY} | {"app": "webhook",
                                            "export.verification.kind": "hmac"}
    assert post(browser, f"/flows/{flow_id}/source", blank, headers=PANE).status_code == 200
    assert flow_doc(server, flow_id)["export"] == {"type": "webhook",
                                                   "verification": {"kind": "hmac"}}
    basic = {**blank, "export.verification.kind": "basic",
             "export.verification.username": "shop", "export.verification.header": "X-No"}
    assert post(browser, f"/flows/{flow_id}/source", basic, headers=PANE).status_code == 200
    assert flow_doc(server, flow_id)["export"]["verification"] == {"kind": "basic",
                                                                  "username": "shop"}


def test_a_refused_webhook_source_names_its_fields_and_changes_nothing(
    server: Server, browser: httpx.Client, shop: dict[str, Any],  # noqa: F811
) -> None:
    flow_id = new_flow(browser, shop)
    before = flow_doc(server, flow_id)
    wrong = {**SHOPIFY, "export.verification.kind": "basic", "export.verification.username": "",
             "export.max_body_bytes": "a lot", "export.batch.max_seconds": "0"}

    refused = post(browser, f"/flows/{flow_id}/source", wrong, headers=PANE)

    assert refused.status_code == 422, refused.text
    invalid = set(re.findall(r'name="([\w.]+)"[^>]*aria-invalid="true"', refused.text))
    assert invalid == {"export.verification.username", "export.max_body_bytes",
                       "export.batch.max_seconds"}
    assert 'value="a lot"' in refused.text  # what was typed, kept
    assert flow_doc(server, flow_id) == before
