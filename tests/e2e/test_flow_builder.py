"""The flow builder in a real browser: from an empty integration, a flow whose source is an
uploaded CSV (its sample records shown), a filter, a schedule with its next run times, and a
destination whose Segment connection is created in place; at 390 px the cards stack."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, screenshot
from tests.e2e.pages import fill_connection, pane

CSV = "order_id,customer_id,status,total\n1,c1,paid,10\n2,c2,test,0\n3,c3,paid,7.5\n"


def create_flow(page: Page, server: WebServer, name: str) -> str:
    """Flows > Create flow > name and integration > the builder; the flow's id."""
    page.goto(f"{server.base_url}/flows")
    expect(page.get_by_role("heading", name="No flows yet")).to_be_visible()
    page.get_by_role("link", name="Create flow").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Integration").select_option(label="Shop")
    page.get_by_role("button", name="Create flow").click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()
    match = re.search(r"/flows/(flw_\w+)$", page.url)
    assert match, page.url
    return match.group(1)


def test_build_a_flow_from_an_empty_integration(signed_in: Page, server: WebServer,
                                               source: dict[str, Any], tmp_path: Path) -> None:
    page = signed_in
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    flow_id = create_flow(page, server, "Orders to Segment")
    builder = f"{server.base_url}/flows/{flow_id}"
    expect(page.locator("#flow-missing")).to_contain_text(
        "add a source (export) and a destination (import)")
    expect(page.locator("#run-now")).to_be_disabled()

    # Add source: Files, upload a CSV, save: its first records are shown
    page.get_by_role("link", name="Add source").click()
    expect(pane(page).get_by_role("heading", name="Add source")).to_be_visible()
    pane(page).get_by_role("link", name=re.compile("^Files")).click()
    expect(pane(page).get_by_label("Format")).to_be_focused()
    csv_file = tmp_path / "orders.csv"
    csv_file.write_text(CSV)
    pane(page).get_by_label("File to upload").set_input_files(str(csv_file))
    pane(page).get_by_label("Key field (optional)").fill("order_id")
    pane(page).get_by_role("button", name="Save source").click()
    expect(pane(page).locator("#pane-banner")).to_have_text("Source saved.")
    expect(pane(page).locator("#pane-banner")).to_be_focused()
    sample = pane(page).locator("#source-sample table")
    expect(sample.locator("tbody tr")).to_have_count(3)
    expect(sample.locator("thead th")).to_have_text(
        ["Record", "order_id", "customer_id", "status", "total"])
    expect(sample.locator("tbody tr").first).to_contain_text("c1")
    expect(page.locator("#card-source")).to_contain_text("orders.csv")  # the board, behind
    expect(page.locator("#flow-missing")).to_contain_text("add a destination (import).")
    pane(page).locator("#source-sample").scroll_into_view_if_needed()
    screenshot(page, "flow-source")
    pane(page).get_by_role("button", name="Close", exact=True).click()
    expect(page).to_have_url(builder)
    expect(page.locator("#open-source")).to_be_focused()

    # Filters: a bad expression is shown at its field; a good one keeps 2 of 3
    page.get_by_role("link", name="Add filter").click()
    pane(page).get_by_label("Filter", exact=True).fill("status !=")
    pane(page).get_by_role("button", name="Save filters").click()
    error = pane(page).locator("#field-steps-0-filter-expression-error")
    expect(error).not_to_be_empty()
    expect(pane(page).locator("#field-steps-0-filter-expression")).to_have_attribute(
        "aria-invalid", "true")
    pane(page).locator("#field-steps-0-filter-expression").fill("status != 'test'")
    pane(page).get_by_role("button", name="Preview with these filters").click()
    expect(pane(page).locator("#kept-summary")).to_contain_text("2 of 3")
    pane(page).get_by_role("button", name="Save filters").click()
    expect(pane(page).locator("#pane-banner")).to_have_text("Filters saved.")
    expect(pane(page).locator("#field-steps-0-filter-expression")).not_to_have_attribute(
        "aria-invalid", "true")
    screenshot(page, "flow-filters")
    expect(page.locator("#card-filters")).to_contain_text("status != 'test'")
    pane(page).get_by_role("button", name="Close", exact=True).click()

    # Schedule: a preset, a zone, the next five times
    page.get_by_role("link", name="Set schedule").click()
    pane(page).get_by_role("button", name="Daily at 02:00").click()
    expect(pane(page).get_by_label("Cron")).to_have_value("0 2 * * *")
    pane(page).get_by_label("Time zone").select_option("Europe/Paris")
    times = pane(page).locator("#next-list li")
    expect(times).to_have_count(5)
    expect(times.first).to_contain_text("(Europe/Paris)")
    expect(times.first).to_contain_text(re.compile(r"0[23]:00"))
    pane(page).get_by_label("Cron").fill("not a cron")
    expect(pane(page).locator("#next-problem")).to_contain_text("not a cron expression")
    pane(page).get_by_role("button", name="Hourly").click()
    expect(times.nth(1)).to_contain_text(":00")
    screenshot(page, "flow-schedule")
    pane(page).get_by_role("button", name="Save schedule").click()
    expect(pane(page).locator("#pane-banner")).to_have_text("Schedule saved.")
    expect(page.locator("#card-schedule")).to_contain_text("0 * * * *")
    pane(page).get_by_role("button", name="Close", exact=True).click()

    # Add destination: a Segment connection created in place, then the mapping
    page.get_by_role("link", name="Add destination").click()
    expect(pane(page).get_by_role("heading", name="Add destination")).to_be_visible()
    pane(page).get_by_label("Destination name").fill("Orders")
    pane(page).get_by_label("track", exact=False).first.check()
    pane(page).get_by_role("button", name="Create connection").click()
    expect(pane(page).get_by_role("heading", name="Create connection")).to_be_visible()
    fill_connection(page, name="Segment - shop", write_key=source["write_key"],
                    endpoint=server.sandbox_url)
    pane(page).get_by_role("button", name="Save & close").click()
    expect(pane(page).get_by_role("heading", name="Add destination")).to_be_visible()
    expect(page).to_have_url(re.compile(rf"/flows/{flow_id}/imports/new\?.*connection=con_"))
    expect(pane(page).get_by_label("Destination name")).to_have_value("Orders")
    expect(pane(page).get_by_label("Segment connection")).to_have_value(
        re.compile("^con_"))
    expect(pane(page).locator("#call-track")).to_be_checked()
    expect(pane(page).locator("#pane-banner")).to_contain_text("Segment - shop")
    screenshot(page, "flow-destination")
    pane(page).get_by_role("button", name="Continue to mapping").click()
    expect(page).to_have_url(re.compile(
        rf"/flows/{flow_id}/imports/new/mapping\?name=Orders&connection=con_\w+&call=track$"))

    page.goto(builder)
    expect(page.locator("#card-destinations")).to_contain_text("Add destination")
    screenshot(page, "flow-builder")

    # delete, after confirming
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete flow").click()
    expect(page).to_have_url(re.compile(r"/flows\?deleted="))
    expect(page.get_by_role("status")).to_contain_text("Deleted the flow 'Orders to Segment'.")
    expect(page.get_by_role("heading", name="No flows yet")).to_be_visible()


def test_the_builder_by_keyboard_alone(signed_in: Page, server: WebServer) -> None:
    page = signed_in
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    flow_id = create_flow(page, server, "Keyboard flow")
    opener = page.locator("#open-schedule")
    opener.focus()
    page.keyboard.press("Enter")
    expect(pane(page).get_by_role("heading", name="Schedule")).to_be_visible()
    expect(pane(page).get_by_label("Cron")).to_be_focused()
    page.keyboard.type("*/15 * * * *")
    expect(pane(page).locator("#next-list li")).to_have_count(5)
    page.keyboard.press("Tab")
    expect(pane(page).get_by_label("Time zone")).to_be_focused()
    pane(page).get_by_role("button", name="Save schedule").focus()
    page.keyboard.press("Enter")
    expect(pane(page).locator("#pane-banner")).to_be_focused()
    page.keyboard.press("Escape")
    expect(pane(page)).to_have_count(0)
    expect(opener).to_be_focused()
    expect(page).to_have_url(f"{server.base_url}/flows/{flow_id}")
    expect(page.locator("#card-schedule")).to_contain_text("*/15 * * * *")


def test_the_builder_at_390_px(narrow_page: Page, server: WebServer,
                              source: dict[str, Any], tmp_path: Path) -> None:
    page = narrow_page
    server.new_connection("Segment - shop", source["write_key"])
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    path = tmp_path / "orders.csv"
    path.write_text(CSV)
    upload = server.api.post("/api/v1/uploads", params={"filename": "orders.csv"},
                             content=CSV.encode()).json()
    doc = {"name": "Orders", "integration": "Shop", "schedule": {"cron": "0 2 * * *"},
           "export": {"type": "csv", "upload": upload["id"]},
           "steps": [{"filter": {"expression": "status != 'test'"}}],
           "imports": [{"name": "Orders", "connection": "Segment - shop", "call": "track",
                        "mapping": {"userId": "customer_id",
                                    "event": {"constant": "Order Completed"}}}]}
    flow = server.api.post("/api/v1/flows", json=doc).json()
    page.goto(f"{server.base_url}/flows/{flow['id']}")
    expect(page.get_by_role("heading", name="Orders", level=1)).to_be_visible()
    boxes = [page.locator(f"#{card}").bounding_box()
             for card in ("card-source", "card-filters", "card-destinations", "card-schedule")]
    assert all(box is not None for box in boxes)
    for above, below in pairwise(boxes):
        assert above is not None and below is not None
        assert below["y"] >= above["y"] + above["height"]  # stacked, one under the other
        assert below["width"] <= 390
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways ({width} px)"
    screenshot(page, "flow-builder-390", full_page=True)

    page.locator("#open-source").click()
    expect(pane(page).locator("#source-sample tbody tr")).to_have_count(3)
    screenshot(page, "flow-source-390")
    pane(page).get_by_role("button", name="Close", exact=True).click()
    expect(pane(page)).to_have_count(0)
