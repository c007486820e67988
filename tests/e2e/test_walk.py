"""The help page, walked in a real browser: from a source's write key to the ping in the
Debugger, at 1280 px and at 390 px."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, screenshot
from tests.e2e.pages import fill_connection, go_to_connections, open_create_pane, pane, row


def copy_write_key(page: Page, server: WebServer, source: dict[str, Any]) -> str:
    """Local Segment > Sources > the source > Settings > API keys: the write key."""
    page.goto(f"{server.sandbox_url}/sources")
    field = page.get_by_label("Write key").first
    expect(field).to_have_value(source["write_key"])
    return field.input_value()


def test_walk_the_help_page(page: Page, server: WebServer, source: dict[str, Any]) -> None:
    page.set_default_timeout(10_000)
    # A. Sign in with the first-start link; then Resources > Connections > + Create connection.
    page.goto(server.login_link(server.first_login_token))
    expect(page).to_have_url(f"{server.base_url}/")
    screenshot(page, "00-home")
    write_key = copy_write_key(page, server, source)
    page.goto(server.base_url)
    page.get_by_role("button", name="Resources").click()
    screenshot(page, "01-resources-menu")
    page.get_by_role("button", name="Resources").click()
    go_to_connections(page)
    screenshot(page, "02-connections-empty")
    page.get_by_role("link", name="Create connection").first.click()
    expect(pane(page).get_by_role("heading", name="Application list")).to_be_visible()
    expect(pane(page).get_by_label("Search applications")).to_be_focused()
    screenshot(page, "03-application-list")
    pane(page).get_by_role("link", name="Segment").click()
    create = pane(page)
    expect(create.get_by_role("heading", name="Create connection")).to_be_visible()
    expect(create.get_by_label("Name")).to_be_focused()
    expect(create.get_by_label("Application")).to_have_value("Segment")
    expect(create.get_by_label("Application")).to_have_attribute("readonly", "")
    expect(create.locator("details#advanced")).not_to_have_attribute("open", "")
    screenshot(page, "04-create-connection")

    # B + C. Name, Write key; the Local Segment as custom endpoint (advanced settings).
    fill_connection(page, name="Segment - website", write_key=write_key,
                    endpoint=server.sandbox_url)

    # D. Test connection: success, latency, messageId, the write-key check, the Debugger.
    create.get_by_role("button", name="Test connection").click()
    result = create.locator("#test-result")
    expect(result).to_contain_text("The connection works")
    expect(result).to_contain_text("Write key: recognised")
    expect(result.locator("#result-latency")).to_have_text(re.compile(r"\d+ ms"))
    test_message_id = result.locator("#result-message-id").inner_text()
    debugger = result.get_by_role("link", name="Open the Debugger")
    expect(debugger).to_have_attribute(
        "href", f"/sandbox/sources/{source['id']}/debugger?q={test_message_id}")
    expect(create.get_by_label("Write key")).to_have_value(write_key)  # Test keeps the form
    screenshot(page, "05-test-result")

    # Save & close: tested again, committed, back to the list, which shows it online.
    create.get_by_role("button", name="Save & close").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page).to_have_url(f"{server.base_url}/connections")
    saved_row = row(page, "Segment - website")
    expect(saved_row.locator(".badge")).to_have_text("Online")
    expect(saved_row).to_contain_text("Segment")
    expect(saved_row).to_contain_text("25 (default)")
    expect(page.get_by_role("link", name="Create connection").first).to_be_focused()
    screenshot(page, "06-connections-list")

    # After testing, open the Debugger and look for the ping.
    page.get_by_role("link", name="Open the Debugger").click()
    expect(page.get_by_role("heading", name="Debugger: Website")).to_be_visible()
    # the row's link searches the Debugger for the messageId of the last test (Save & close)
    expect(page.get_by_label("Search")).to_have_value(re.compile(r"^segbridge-"))
    expect(page.locator("#event-list > li")).to_have_count(1)
    expect(page.locator("#event-list")).to_contain_text("segbridge-connection-test")
    events = server.debugger_events(source["id"], test_message_id)
    assert [e["message_id"] for e in events] == [test_message_id]
    screenshot(page, "07-debugger")
    page.goto("about:blank")  # end the Debugger's live stream before the server stops


def test_walk_at_390_px(narrow_page: Page, server: WebServer, source: dict[str, Any]) -> None:
    page = narrow_page
    page.goto(f"{server.base_url}/connections")
    create = open_create_pane(page)
    create.evaluate("pane => Promise.all(pane.getAnimations().map(a => a.finished))")
    box = create.bounding_box()
    assert box is not None and box["x"] == 0 and box["width"] == 390
    fill_connection(page, name="Segment - phone", write_key=source["write_key"],
                    endpoint=server.sandbox_url)
    create.get_by_role("button", name="Test connection").click()
    expect(create.locator("#test-result")).to_contain_text("The connection works")
    screenshot(page, "10-narrow-test-result")
    create.get_by_role("button", name="Save & close").click()
    saved_row = row(page, "Segment - phone")
    expect(saved_row.locator(".badge")).to_have_text("Online")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "11-narrow-connections")
    page.get_by_role("link", name="Open the Debugger").click()
    expect(page.locator("#event-list")).to_contain_text("segbridge-connection-test")
    page.goto("about:blank")
