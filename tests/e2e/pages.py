"""Steps a user takes in the web UI, written once and used by the browser tests."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect


def go_to_connections(page: Page) -> None:
    """Resources > Connections, from any page with the top bar."""
    page.get_by_role("button", name="Resources").click()
    page.get_by_role("link", name="Connections").first.click()
    expect(page.get_by_role("heading", name="Connections", level=1)).to_be_visible()


def pane(page: Page) -> Locator:
    return page.get_by_role("dialog")


def open_create_pane(page: Page) -> Locator:
    """+ Create connection > Application list > Segment."""
    page.get_by_role("link", name="Create connection").first.click()
    expect(pane(page).get_by_role("heading", name="Application list")).to_be_visible()
    pane(page).get_by_role("link", name="Segment").click()
    expect(pane(page).get_by_role("heading", name="Create connection")).to_be_visible()
    return pane(page)


def open_advanced(page: Page) -> None:
    summary = pane(page).locator("summary", has_text="Advanced settings")
    if pane(page).locator("details#advanced[open]").count() == 0:
        summary.click()


def fill_connection(page: Page, *, name: str, write_key: str, endpoint: str | None) -> None:
    p = pane(page)
    p.get_by_label("Name").fill(name)
    p.get_by_label("Write key").fill(write_key)
    if endpoint is not None:
        open_advanced(page)
        p.get_by_label("Custom endpoint URL").fill(endpoint)


def field_error(page: Page, field_id: str) -> Locator:
    return page.locator(f"#{field_id}-error")


def expect_field_error(page: Page, field_id: str, text: str) -> None:
    """The error sits next to its field, and the field points to it and is marked invalid."""
    error = field_error(page, field_id)
    expect(error).to_contain_text(text)
    control = page.locator(f"#{field_id}")
    expect(control).to_have_attribute("aria-invalid", "true")
    described = control.get_attribute("aria-describedby") or ""
    assert f"{field_id}-error" in described.split()
    field = page.locator(".field", has=control)
    expect(field.locator(".field-error")).to_have_text(error.inner_text())


def row(page: Page, name: str) -> Locator:
    """The list's row of the connection with this exact name."""
    return page.locator("tbody tr", has=page.get_by_role("link", name=name, exact=True))


def host_pane_here(page: Page, url: str, *, opener_id: str = "add-connection") -> Locator:
    """Give the current page what a page that creates connections in place has (a
    ``<div id="pane-host">`` outside ``#page`` and a button loading ``url`` into it with
    htmx), as the flow builder does; return the button."""
    page.evaluate(
        """([url, openerId]) => {
            const host = document.createElement("div");
            host.id = "pane-host";
            host.className = "pane-host";
            document.body.appendChild(host);
            const button = document.createElement("button");
            button.type = "button";
            button.id = openerId;
            button.className = "button";
            button.textContent = "Create a connection here";
            button.setAttribute("hx-get", url);
            button.setAttribute("hx-target", "#pane-host");
            document.getElementById("main").prepend(button);
            window.htmx.process(button);
        }""",
        [url, opener_id])
    return page.locator(f"#{opener_id}")
