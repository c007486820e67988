"""Lookups in the flow builder, in a real browser: a flow of orders gets a lookup on a real
SQLite customer table, its Database connection created in place from the Lookup pane; a
refused save shows the problem at its field; after the save, the preview shows each order's
customer row (or that nothing was found); the lookup is on its card, edited by keyboard."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, text

from tests.e2e.conftest import WebServer, screenshot
from tests.e2e.pages import pane

CSV = "order_id,customer_id,status,total\n1,c1,paid,10\n2,c2,test,0\n3,c3,paid,7.5\n"


def customer_table(path: Path) -> str:
    """A SQLite file with customers c1 (pro) and c3 (team); c2 is unknown."""
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE customers (id TEXT PRIMARY KEY, plan TEXT, "
                                "country TEXT)"))
        connection.execute(text("INSERT INTO customers VALUES ('c1', 'pro', 'FR'), "
                                "('c3', 'team', 'DE')"))
    engine.dispose()
    return f"sqlite:///{path}"


def orders_flow(server: WebServer, source: dict[str, Any], tmp_path: Path) -> str:
    """A flow of the uploaded orders to a Segment connection (made through the API)."""
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    server.new_connection("Segment - shop", source["write_key"])
    upload = server.api.post("/api/v1/uploads", params={"filename": "orders.csv"},
                             content=CSV.encode()).json()
    doc = {"name": "Orders", "integration": "Shop",
           "export": {"type": "csv", "upload": upload["id"], "key_field": "order_id"},
           "imports": [{"name": "Orders", "connection": "Segment - shop", "call": "track",
                        "mapping": {"userId": "customer_id",
                                    "event": {"constant": "Order Completed"}}}]}
    created = server.api.post("/api/v1/flows", json=doc)
    assert created.status_code == 201, created.text
    flow_id: str = created.json()["id"]
    return flow_id


def test_a_lookup_on_a_customer_table_shows_its_values_in_the_preview(
        signed_in: Page, server: WebServer, source: dict[str, Any], tmp_path: Path) -> None:
    page = signed_in
    url = customer_table(tmp_path / "crm.db")
    flow_id = orders_flow(server, source, tmp_path)
    page.goto(f"{server.base_url}/flows/{flow_id}")
    expect(page.locator("#card-lookups")).to_contain_text("None: add fields")

    page.get_by_role("link", name="Add lookup").click()
    expect(pane(page).get_by_role("heading", name="Add lookup")).to_be_visible()
    expect(page).to_have_url(f"{server.base_url}/flows/{flow_id}/lookups/new")
    expect(pane(page).locator("#field-lookup-name")).to_be_focused()
    expect(pane(page).locator("#field-lookup-connection")).to_contain_text(
        "Choose a connection")

    # no Database connection yet: create one in place; it comes back chosen, and what was
    # typed is kept (the query's parameter ready for its field)
    query = "select id, plan, country from customers where id in :customer"
    pane(page).locator("#field-lookup-name").fill("customer.row")
    pane(page).get_by_label("Query").fill(query)
    pane(page).get_by_role("button", name="Create Database connection").click()
    expect(pane(page).get_by_role("heading", name="Create connection")).to_be_visible()
    pane(page).get_by_label("Name").fill("CRM")
    pane(page).get_by_label("Database URL").fill(url)
    pane(page).get_by_role("button", name="Save & close").click()
    expect(pane(page).get_by_role("heading", name="Add lookup")).to_be_visible()
    expect(page).to_have_url(re.compile(rf"/flows/{flow_id}/lookups/new\?.*connection=con_"))
    p = pane(page)
    expect(p.locator("#field-lookup-connection")).to_have_value("CRM")
    expect(p.locator("#pane-banner")).to_contain_text("Connection 'CRM' chosen.")
    expect(p.locator("#field-lookup-name")).to_have_value("customer.row")
    expect(p.get_by_label("Query")).to_have_value(query)
    expect(p.get_by_label("Parameter 1", exact=True)).to_have_value("customer")
    p.get_by_label("Record field for parameter 1").fill("customer_id")
    p.get_by_label("Key column (optional)").fill("id")
    p.get_by_role("button", name="Save lookup").click()
    error = p.locator("#field-lookup-name-error")
    expect(error).to_contain_text("no dots")
    expect(p.locator("#field-lookup-name")).to_have_attribute("aria-invalid", "true")
    expect(p.get_by_label("Record field for parameter 1")).to_have_value("customer_id")

    p.locator("#field-lookup-name").fill("customer")
    p.get_by_role("button", name="Save lookup").click()
    expect(p.locator("#pane-banner")).to_have_text("Lookup saved.")
    expect(page).to_have_url(f"{server.base_url}/flows/{flow_id}/lookups/0")
    rows = p.locator("#lookup-preview tbody tr")
    expect(rows).to_have_count(3)
    expect(p.locator("#lookup-preview thead th")).to_have_text(
        ["Record", "customer_id", "customer", "Outcome"])
    expect(rows.nth(0)).to_contain_text('"plan": "pro"')
    expect(rows.nth(1)).to_contain_text("nothing found")
    expect(rows.nth(2)).to_contain_text('"country": "DE"')
    expect(page.locator("#card-lookup-0")).to_contain_text("customer")  # the board, behind
    expect(page.locator("#card-lookup-0")).to_contain_text("CRM")
    p.locator("#lookup-preview").scroll_into_view_if_needed()
    screenshot(page, "flow-lookup")
    page.keyboard.press("Escape")
    expect(pane(page)).to_have_count(0)

    # by keyboard: open it from its card, fail the records it finds nothing for
    opener = page.locator("#lookup-0")
    opener.focus()
    page.keyboard.press("Enter")
    expect(pane(page).get_by_role("heading", name="Lookup customer")).to_be_visible()
    choice = pane(page).get_by_label("Fail the record")
    choice.focus()
    page.keyboard.press("Space")
    expect(choice).to_be_checked()
    pane(page).get_by_role("button", name="Save lookup").focus()
    page.keyboard.press("Enter")
    expect(pane(page).locator("#pane-banner")).to_be_focused()
    expect(pane(page).locator("#lookup-preview tbody tr").nth(1)).to_contain_text(
        "found nothing for customer_id")
    page.keyboard.press("Escape")
    expect(pane(page)).to_have_count(0)
    expect(page.locator("#card-lookup-0")).to_contain_text("the record fails")
    steps = server.api.get(f"/api/v1/flows/{flow_id}").json()["definition"]["steps"]
    assert steps[0]["lookup"]["on_missing"] == "fail_record"
    assert steps[0]["lookup"]["params"] == {"customer": "customer_id"}
