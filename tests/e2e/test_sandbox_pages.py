"""The Local Segment's pages in the app's layout: the top bar and the app's styles, their
icon (no favicon 404), and a Debugger whose event detail uses the width of a phone."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Response, expect

from tests.e2e.conftest import WebServer, screenshot


@pytest.fixture
def sent(server: WebServer, source: dict[str, Any]) -> dict[str, Any]:
    """A track call received by the source."""
    key = base64.b64encode(f"{source['write_key']}:".encode()).decode()
    call = {"userId": "user-42", "event": "Order Completed", "messageId": "e2e-order-1",
            "properties": {"order_id": "1001", "total": 99.5,
                           "note": "a long property value that wraps on a phone " * 3}}
    response = httpx.post(f"{server.sandbox_url}/v1/track", json=call, trust_env=False,
                          headers={"Authorization": f"Basic {key}"})
    assert response.status_code == 200, response.text
    return call


@pytest.fixture
def not_found(page: Page) -> Iterator[list[str]]:
    """Every 4xx the page's own requests met (the favicon included, which the conftest's
    asset check does not see: browsers ask for it as 'other')."""
    found: list[str] = []

    def check(response: Response) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            found.append(f"{response.status} {response.url}")

    page.on("response", check)
    yield found


def open_debugger(page: Page, server: WebServer, source: dict[str, Any]) -> None:
    page.goto(f"{server.sandbox_url}/sources")
    expect(page.locator("#topbar")).to_be_visible()
    expect(page.get_by_role("heading", name="Sources", exact=True)).to_be_visible()
    page.get_by_role("link", name=source["name"]).click()
    expect(page.get_by_role("heading", name=f"Debugger: {source['name']}")).to_be_visible()
    page.locator("#event-list button", has_text="Order Completed").click()
    expect(page.locator("#event-detail")).to_contain_text('analytics.track("Order Completed"')


def test_the_debugger_has_the_apps_top_bar_and_icon(
        signed_in: Page, server: WebServer, source: dict[str, Any], sent: dict[str, Any],
        not_found: list[str]) -> None:
    page = signed_in
    open_debugger(page, server, source)
    topbar = page.locator("#topbar")
    expect(topbar.get_by_role("link", name="segbridge")).to_be_visible()
    expect(topbar.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.locator('link[rel="icon"]')).to_have_count(1)
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert icon is not None and page.request.get(server.base_url + icon).ok
    # the app's styles: the same page width and heading font as the app's own pages
    assert page.locator("#main").evaluate("m => getComputedStyle(m).maxWidth") == "1240px"
    expect(page).to_have_title(f"Debugger: {source['name']} · Local Segment · segbridge")
    detail = page.locator("#event-detail").bounding_box()
    listing = page.locator("#event-list").bounding_box()
    assert detail is not None and listing is not None
    assert detail["x"] > listing["x"] + listing["width"]  # side by side when wide
    screenshot(page, "debugger")
    page.get_by_role("link", name="Local Segment", exact=True).first.click()
    expect(page.get_by_role("heading", name="Sources", exact=True)).to_be_visible()
    screenshot(page, "local-segment-sources")
    page.goto("about:blank")  # end the Debugger's live stream before the server stops
    assert not_found == []


def test_the_debugger_uses_a_phones_width(
        narrow_page: Page, server: WebServer, source: dict[str, Any], sent: dict[str, Any],
) -> None:
    page = narrow_page
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    open_debugger(page, server, source)
    expect(page.locator("#topbar")).to_be_visible()
    detail = page.locator("#event-detail").bounding_box()
    assert detail is not None and detail["width"] >= 300, detail
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.locator("#event-detail").scroll_into_view_if_needed()
    screenshot(page, "debugger-390")
    page.goto("about:blank")
    assert missing == []
