"""The API docs page in a browser with no way out to the internet: Swagger UI comes from this
server, its start-up script runs under the page's CSP, and the operations are listed."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page, Route, expect

from tests.e2e.conftest import NARROW, WebServer, screenshot


def test_the_api_docs_list_the_operations_offline(signed_in: Page, server: WebServer) -> None:
    page = signed_in
    outside: list[str] = []
    own_host = urlsplit(server.base_url).netloc

    def offline(route: Route) -> None:
        if urlsplit(route.request.url).netloc == own_host:
            route.continue_()
        else:  # a CDN, a validator badge: none may be asked for
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", offline)
    page.goto(f"{server.base_url}/api/docs")
    # (Swagger UI renders the whole schema first: seconds on a loaded machine)
    expect(page.get_by_role("heading", name="segbridge")).to_be_visible(timeout=30_000)
    operations = page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible(timeout=30_000)
    assert operations.count() > 20
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/uploads").first).to_be_visible()
    page.locator(".opblock-summary-control", has_text="/api/v1/connections").first.click()
    expect(page.get_by_role("button", name="Try it out").first).to_be_visible()
    screenshot(page, "api-docs")
    page.set_viewport_size(NARROW)
    screenshot(page, "api-docs-390")
    assert outside == []
