"""The mapping editor in a browser: a CSV flow gets a new track destination, mapped from the
sample records' fields with the preview showing the call; a bad expression is marked at its
position; Save adds the import to the flow. And the editor at 390 px."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, screenshot
from tests.integration.flows.conftest import track_flow, write_csv


@pytest.fixture
def flow(server: WebServer, source: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A CSV flow of 8 sign-ups into the built-in Segment (one track import already)."""
    server.new_connection("Segment - shop", source["write_key"])
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    rows = [{"order_id": i, "customer_id": f"C{i}", "kind": "Signed Up", "total": i * 2,
             "currency": "EUR", "created_at": f"2026-11-0{1 + i % 8}T10:00:00Z"}
            for i in range(8)]
    doc = track_flow("Sign-ups", write_csv(tmp_path / "signups.csv", rows), "Segment - shop")
    response = server.api.post("/api/v1/flows", json=doc)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def map_field(page: Page, key: str, kind: str, value: str) -> None:
    page.get_by_label(f"{key} source", exact=True).select_option(kind)
    page.get_by_label(f"{key} value", exact=True).fill(value)


def test_a_track_destination_mapped_from_sample_fields_with_its_preview(
    signed_in: Page, server: WebServer, flow: dict[str, Any],
) -> None:
    page = signed_in
    page.goto(f"{server.base_url}/flows/{flow['id']}/imports/new/mapping"
              "?name=Signups&connection=Segment%20-%20shop&call=track")
    expect(page.get_by_role("heading", name="Mapping of Signups", level=1)).to_be_visible()
    preview = page.locator("#mapping-preview")
    # before the mapping is complete: the records as read, and what is missing at its field
    expect(preview).to_contain_text("Fix the mapping's problems")
    expect(preview.locator(".preview-record")).to_have_count(5)
    expect(page.locator("#field-f-event-error")).to_contain_text("Track calls need event")
    # the field picker offers the sample records' fields
    for path in ("customer_id", "kind", "created_at"):
        expect(page.locator(f"#record-fields option[value='{path}']")).to_have_count(1)

    map_field(page, "userId", "field", "customer_id")
    map_field(page, "event", "field", "kind")
    expect(page.get_by_label("userId value", exact=True)).to_have_attribute(
        "list", "record-fields")
    first = preview.locator(".preview-record").first
    expect(first.locator(".preview-call")).to_contain_text('"type": "track"')
    expect(first.locator(".preview-call")).to_contain_text('"event": "Signed Up"')
    expect(first.locator(".preview-call")).to_contain_text('"userId": "C0"')
    expect(page.locator("#field-f-event-error")).to_be_empty()
    expect(page.get_by_label("event value", exact=True)).not_to_have_attribute(
        "aria-invalid", "true")

    # a property renamed, and more records in the preview
    page.get_by_label("properties field 1 name in the call").fill("amount")
    page.get_by_label("properties field 1 value").fill("total")
    page.get_by_label("Records").select_option("10")
    expect(preview.locator(".preview-record")).to_have_count(8)
    expect(first.locator(".preview-call")).to_contain_text('"amount": "0"')

    # a bad expression: its error is marked at its position
    map_field(page, "anonymousId", "expression", "lower(customer_id) +* 2")
    error = page.locator("#field-f-anonymousId-error")
    expect(error).to_contain_text("Syntax error")
    expect(error).to_contain_text("column 21")
    expect(error.locator(".expr-marker")).to_have_text("lower(customer_id) +* 2\n"
                                                       + " " * 20 + "^")
    expect(page.get_by_label("anonymousId value", exact=True)).to_have_attribute(
        "aria-invalid", "true")
    page.set_viewport_size({"width": 1280, "height": 1240})
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "mapping-editor")

    page.get_by_label("anonymousId value", exact=True).fill("lower(customer_id)")
    expect(error).to_be_empty()
    expect(first.locator(".preview-call")).to_contain_text('"anonymousId": "c0"')
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(f"{server.base_url}/flows/{flow['id']}")
    imports = server.api.get(f"/api/v1/flows/{flow['id']}").json()["definition"]["imports"]
    assert imports[1] == {
        "name": "Signups", "connection": "Segment - shop", "call": "track",
        "mapping": {"userId": "customer_id", "anonymousId": {"expression": "lower(customer_id)"},
                    "event": "kind", "properties": {"fields": {"amount": "total"}}}}


def test_the_editor_at_390_px(narrow_page: Page, server: WebServer,
                              flow: dict[str, Any]) -> None:
    page = narrow_page
    page.goto(f"{server.base_url}/flows/{flow['id']}/imports/0/mapping")
    expect(page.get_by_role("heading", name="Mapping of Orders", level=1)).to_be_visible()
    expect(page.locator("#mapping-preview .preview-call").first).to_contain_text(
        '"event": "Order Completed"')
    # the call type changes the fields in place; the preview follows
    page.get_by_label("Call type").select_option("identify")
    expect(page.get_by_role("heading", name="traits")).to_be_visible()
    expect(page.get_by_label("event source", exact=True)).to_have_count(0)
    expect(page.locator("#mapping-preview .preview-call").first).to_contain_text(
        '"type": "identify"')
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide at 390 px"
    screenshot(page, "mapping-editor-390")


def test_yaml_mode_and_the_keyboard(signed_in: Page, server: WebServer,
                                    flow: dict[str, Any]) -> None:
    page = signed_in
    page.goto(f"{server.base_url}/flows/{flow['id']}/imports/0/mapping")
    preview = page.locator("#mapping-preview")
    expect(preview.locator(".preview-call").first).to_contain_text('"event": "Order Completed"')

    # keyboard only: add a property row and fill it
    add = page.get_by_role("button", name="Add a field")
    add.focus()
    page.keyboard.press("Enter")
    name = page.get_by_label("properties field 5 name in the call")
    expect(name).to_be_focused()
    page.keyboard.type("kind_of")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.type("kind")
    expect(preview.locator(".preview-call").first).to_contain_text('"kind_of": "Signed Up"')

    # the YAML follows the form; ticked, it replaces the form
    page.locator("summary", has_text="Advanced: edit as YAML").click()
    yaml_box = page.get_by_label("The mapping as YAML")
    expect(yaml_box).to_have_attribute("readonly", "")
    expect(yaml_box).to_have_value(re.compile(r"kind_of: kind"))
    page.get_by_label("Use this YAML instead of the form").check()
    expect(page.get_by_label("userId source", exact=True)).to_be_disabled()
    expect(yaml_box).not_to_have_attribute("readonly", "", timeout=20_000)
    yaml_box.fill("userId: customer_id\nevent:\n  constant: Paid\n")
    expect(preview.locator(".preview-call").first).to_contain_text('"event": "Paid"')
    yaml_box.fill("userId: customer_id\n")
    expect(page.locator("#field-yaml-error")).to_contain_text("Track calls need event")
    yaml_box.fill("userId: customer_id\nevent: kind\n")
    expect(page.locator("#field-yaml-error")).to_be_empty()
    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(f"{server.base_url}/flows/{flow['id']}")
    imports = server.api.get(f"/api/v1/flows/{flow['id']}").json()["definition"]["imports"]
    assert imports[0]["mapping"] == {"userId": "customer_id", "event": "kind"}
