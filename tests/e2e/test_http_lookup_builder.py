"""An HTTP lookup in the flow builder, in a real browser: choosing an HTTP API connection in
the Lookup pane swaps the query fields for the request's (htmx, what was typed kept); the
saved lookup's preview shows what a real customers API on loopback answered for each order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer
from tests.e2e.pages import pane
from tests.e2e.test_lookup_builder import orders_flow
from tests.integration.apps.http.shop_api import API_KEY, shop_api


def test_an_http_lookup_is_built_by_choosing_its_connection(
        signed_in: Page, server: WebServer, source: dict[str, Any], tmp_path: Path) -> None:
    page = signed_in
    with shop_api(records=0, auth="api_key_header") as (url, state):
        state.customers = {"c1": {"id": "c1", "plan": "pro"}, "c3": {"id": "c3", "plan": "team"}}
        made = server.api.post("/api/v1/connections", json={
            "name": "CRM API", "application": "http",
            "settings": {"base_url": url, "auth": "api_key_header", "api_key_name": "X-API-Key",
                         "api_key": API_KEY, "test_request": "GET /health"}})
        assert made.status_code == 201, made.text
        flow_id = orders_flow(server, source, tmp_path)
        page.goto(f"{server.base_url}/flows/{flow_id}/lookups/new")
        p = pane(page)
        expect(p.get_by_label("Query")).to_be_visible()
        p.locator("#field-lookup-name").fill("customer")
        p.locator("#field-lookup-connection").select_option("CRM API")
        expect(p.get_by_label("Path")).to_be_visible()  # the HTTP form, swapped in by htmx
        expect(p.get_by_label("Query", exact=True)).to_have_count(0)
        expect(p.locator("#field-lookup-name")).to_have_value("customer")
        p.get_by_label("Path").fill("/customers/{id}")
        p.get_by_label("Where the answer's object is").fill("data")
        p.get_by_label("Parameter 1", exact=True).fill("id")
        p.get_by_label("Record field for parameter 1").fill("customer_id")
        p.get_by_role("button", name="Save lookup").click()
        expect(p.locator("#pane-banner")).to_have_text("Lookup saved.")
        rows = p.locator("#lookup-preview tbody tr")
        expect(rows).to_have_count(3)
        expect(rows.nth(0)).to_contain_text('"plan": "pro"')
        expect(rows.nth(1)).to_contain_text("nothing found")
        expect(rows.nth(2)).to_contain_text('"plan": "team"')
    steps = server.api.get(f"/api/v1/flows/{flow_id}").json()["definition"]["steps"]
    assert steps[0]["lookup"]["request"] == {"path": "/customers/{id}"}
    assert steps[0]["lookup"]["result"] == "data"
