"""Resources > Integrations as a user walks it: create one, rename it, see its delete refused
while it holds a flow; Resources > Connections: delete a connection (refused while a flow
uses it, naming the flow); the list at 390 px."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, screenshot
from tests.e2e.pages import go_to_connections, row
from tests.integration.flows.conftest import (
    orders,
    track_flow,
    wait_for_run,
    workers,  # noqa: F401 - the flows tests' fixture, here on the browser tests' server
    write_csv,
)


def flow_of(server: WebServer, integration: str, source: dict[str, Any], tmp_path: Path,
            name: str = "Orders to Segment") -> dict[str, Any]:
    """A flow of ``integration`` using a new connection 'Segment - shop' (through the API);
    of its 3 orders, the second has no customer (a record error when it runs)."""
    server.new_connection("Segment - shop", source["write_key"])
    rows = orders(3)
    rows[1]["customer_id"] = ""
    doc = track_flow(name, write_csv(tmp_path / "orders.csv", rows), "Segment - shop")
    created = server.api.post("/api/v1/flows", json={**doc, "integration": integration})
    assert created.status_code == 201, created.text
    flow: dict[str, Any] = created.json()
    return flow


@pytest.mark.usefixtures("workers")
def test_create_rename_and_delete_refused_while_it_has_a_flow(
    signed_in: Page, server: WebServer, source: dict[str, Any], tmp_path: Path,
) -> None:
    page = signed_in
    page.get_by_role("button", name="Resources").click()
    page.locator("#menu-integrations").click()
    expect(page.get_by_role("heading", name="Integrations", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="No integrations yet")).to_be_visible()

    # an empty name is refused next to the field, with the keyboard alone
    page.get_by_label("Name of a new integration").focus()
    page.keyboard.type("   ")
    page.get_by_role("button", name="Create integration").click()
    expect(page.locator("#field-name-error")).to_have_text(
        "Enter a name of 1 to 100 characters.")
    expect(page.locator("#field-name")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Name of a new integration").fill("Shop")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Shop", level=1)).to_be_visible()
    expect(page.locator("#flash")).to_contain_text("The integration was created.")
    expect(page.get_by_role("heading", name="No flows yet")).to_be_visible()
    create_flow = page.get_by_role("link", name="Create flow")
    expect(create_flow).to_have_attribute("href", f"/flows/new?integration={_id_in(page)}")

    page.locator("#rename-integration").get_by_label("Name").fill("Web shop")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("heading", name="Web shop", level=1)).to_be_visible()
    expect(page.locator("#flash")).to_contain_text("The integration was renamed.")

    flow = flow_of(server, "Web shop", source, tmp_path)
    page.reload()
    flow_row = page.locator(f"#flow-{flow['id']}")
    expect(flow_row.get_by_role("link", name="Orders to Segment")).to_have_attribute(
        "href", f"/flows/{flow['id']}")
    expect(flow_row).to_contain_text("Enabled")
    expect(flow_row).to_contain_text("Never run")

    page.locator("#delete-integration summary").click()
    expect(page.locator("#delete-integration")).to_contain_text("still has 1 flow")
    page.get_by_role("button", name="Delete 'Web shop'").click()
    expect(page.locator("#problem")).to_have_text(
        "The integration 'Web shop' still has flows: Orders to Segment. Delete or move them "
        "first.")
    expect(page.locator("#problem")).to_be_focused()
    expect(page.get_by_role("heading", name="Web shop", level=1)).to_be_visible()

    run = wait_for_run(server, server.api.post(f"/api/v1/flows/{flow['id']}/runs").json()["id"])
    assert run["status"] == "completed_with_errors", run
    page.goto(f"{server.base_url}/integrations/{flow['integration_id']}")  # no re-POST
    expect(flow_row.get_by_role("link", name="completed with errors")).to_have_attribute(
        "href", f"/runs/{run['id']}")
    expect(flow_row.get_by_role("link", name="1 open error")).to_have_attribute(
        "href", f"/flows/{flow['id']}/runs")
    screenshot(page, "integration")

    page.get_by_role("link", name="Integrations", exact=True).first.click()
    line = page.locator("#integration-table tbody tr")
    expect(line).to_have_count(1)
    expect(line).to_contain_text("Web shop")
    expect(line.locator("td[data-label='Flows']")).to_have_text("1 flow")
    expect(line.locator("td[data-label='Open errors']")).to_have_text("1 open error")
    expect(line.get_by_role("link", name="completed with errors")).to_have_attribute(
        "href", f"/runs/{run['id']}")
    screenshot(page, "integrations")


def test_delete_a_connection_refused_while_a_flow_uses_it(
    signed_in: Page, server: WebServer, source: dict[str, Any], tmp_path: Path,
) -> None:
    page = signed_in
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    flow = flow_of(server, "Shop", source, tmp_path)
    server.new_connection("Spare", server.create_source("Spare")["write_key"])
    go_to_connections(page)
    used = row(page, "Segment - shop")
    expect(used.get_by_role("link", name="Orders to Segment")).to_have_attribute(
        "href", f"/flows/{flow['id']}")

    used.locator("summary", has_text="Delete…").click()
    used.get_by_role("button", name="Delete 'Segment - shop'").click()
    expect(page.locator("#flash")).to_contain_text(
        "'Segment - shop' is in use and was not deleted: flow 'Orders to Segment' uses it.")
    expect(page.locator("#flash-problem")).to_be_focused()
    expect(row(page, "Segment - shop")).to_be_visible()
    screenshot(page, "connections-delete-refused")

    spare = row(page, "Spare")
    spare.locator("summary", has_text="Delete…").click()
    screenshot(page, "connections-delete-confirm")
    spare.get_by_role("button", name="Delete 'Spare'").click()
    expect(page.locator("#flash")).to_contain_text("The connection was deleted.")
    expect(row(page, "Spare")).to_have_count(0)
    expect(row(page, "Segment - shop")).to_be_visible()


def test_the_list_at_390_px(narrow_page: Page, server: WebServer, source: dict[str, Any],
                            tmp_path: Path) -> None:
    page = narrow_page
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    assert server.api.post("/api/v1/integrations", json={"name": "CRM"}).status_code == 201
    flow_of(server, "Shop", source, tmp_path)
    page.goto(f"{server.base_url}/integrations")
    expect(page.get_by_role("heading", name="Integrations", level=1)).to_be_visible()
    shop = page.locator("#integration-table tbody tr", has_text="Shop")
    # every number says what it counts
    expect(shop.locator("td[data-label='Flows']")).to_have_text("1 flow")
    expect(shop.locator("td[data-label='Open errors']")).to_have_text("No open errors")
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide at 390 px"
    screenshot(page, "integrations-390")

    shop.get_by_role("link", name="Shop").click()
    expect(page.get_by_role("heading", name="Shop", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Orders to Segment")).to_be_visible()
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 390, f"the integration's page is {width} px wide at 390 px"
    screenshot(page, "integration-390", full_page=True)


def _id_in(page: Page) -> str:
    """The integration id in the page's address (/integrations/<id>?done=...)."""
    return page.url.split("/integrations/")[1].split("?")[0]
