"""The standalone pages in a real browser (Debian's Chromium through Playwright): sign in,
create a source with the form, and open the Debugger filtered by ``?q=``, live events included.

Playwright is started and stopped inside the test: its sync API leaves an event loop in the
main thread while it runs, and later tests (the CLI's) need that thread free.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from .conftest import ADMIN_TOKEN, Sandbox, SandboxFactory, basic

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture
def chromium_page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(locale="en-US", timezone_id="UTC")
        page = context.new_page()
        page.set_default_timeout(10_000)
        problems: list[str] = []  # script errors and Content-Security-Policy violations
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on(
            "console",
            lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
        )
        yield page
        page.goto("about:blank")  # end the live stream before the server stops
        context.close()
        browser.close()
    assert not problems, problems
    asyncio.run(asyncio.sleep(0))  # the main thread has no event loop left behind


def sign_in(page: Page, sandbox: Sandbox) -> None:
    page.goto(f"{sandbox.url}/sources")
    expect(page).to_have_url(f"{sandbox.url}/login")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{sandbox.url}/sources")


def send(sandbox: Sandbox, source: dict[str, Any], *message_ids: str) -> None:
    batch = [{"type": "track", "userId": "u", "event": "E", "messageId": m} for m in message_ids]
    response = sandbox.http.post(
        "/v1/batch", json={"batch": batch}, headers=basic(source["write_key"])
    )
    assert response.status_code == 200


def test_create_a_source_then_filter_its_debugger(
    chromium_page: Page, make_sandbox: SandboxFactory
) -> None:
    page = chromium_page
    sandbox = make_sandbox()
    sign_in(page, sandbox)

    page.get_by_label("Name", exact=True).fill("Browser source")
    page.get_by_role("button", name="Create source").click()
    expect(page.get_by_role("status").filter(has_text="created")).to_have_text(
        "Source “Browser source” created."
    )
    [created] = [s for s in sandbox.state.store.list() if s.name == "Browser source"]
    source = created.to_json()

    send(sandbox, source, "ping-older", "segbridge-test-42", "ping-newer")
    page.goto(f"{sandbox.url}/sources/{source['id']}/debugger?q=segbridge-test-42")
    events = page.locator("#event-list > li")
    expect(page.get_by_label("Search")).to_have_value("segbridge-test-42")
    expect(events).to_have_count(1)
    expect(events.first).to_contain_text("segbridge-test-42")
    expect(events.first.get_by_role("button")).to_have_attribute("aria-current", "true")
    page.get_by_role("button", name="Raw").click()  # the match is selected and shown
    expect(page.locator("#event-detail")).to_contain_text('"messageId": "segbridge-test-42"')
    expect(page.locator("#status")).to_have_text("Live")

    send(sandbox, source, "live-other", "live-segbridge-test-42")  # the stream is filtered too
    expect(events).to_have_count(2)
    expect(events.first).to_contain_text("live-segbridge-test-42")
    expect(page.locator("#event-list")).not_to_contain_text("live-other")

    page.get_by_label("Search").fill("")
    expect(events).to_have_count(5)
    expect(page).to_have_url(re.compile(r"/debugger$"))
    page.get_by_label("Search").fill("nothing-like-it")
    expect(page).to_have_url(re.compile(r"\?q=nothing-like-it$"))
    expect(events).to_have_count(1)
    expect(events.first).to_contain_text("No event matches “nothing-like-it” yet")
