"""Browser tests: the whole server under uvicorn on loopback (SQLite only), Debian's Chromium
driven by Playwright.

The tests take screenshots of the main screens. They go to a temporary folder, or, to refresh
the ones in the docs, to the folder named by ``SEGBRIDGE_SCREENSHOTS``:
``SEGBRIDGE_SCREENSHOTS=docs/screenshots .venv/bin/pytest tests/e2e``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Response,
    ViewportSize,
)

from segbridge.accounts import service as accounts
from segbridge.accounts.sessions import SESSION_COOKIE, csrf_token_for
from segbridge.api.routes.hooks import close_webhooks
from segbridge.assembly import create_app
from segbridge.runtime import ADMIN_EMAIL, Runtime, first_start
from tests.integration.conftest import Server, admin_token
from tests.support.databases import sqlite_url
from tests.support.servers import serve_in_thread

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("SEGBRIDGE_SCREENSHOTS")
                   or Path(tempfile.gettempdir()) / "segbridge-screenshots")
WIDE: ViewportSize = {"width": 1280, "height": 800}
NARROW: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """Browser tests run on SQLite only (the services are tested on both databases)."""
    yield sqlite_url(tmp_path)


@dataclass
class WebServer(Server):
    """A running server, its first-start login token, and helpers for browser sessions."""

    first_login_token: str = ""

    def login_link(self, token: str | None = None) -> str:
        return f"{self.base_url}/login?token={token or self.new_login_token()}"

    def new_login_token(self, email: str = ADMIN_EMAIL) -> str:
        with self.runtime.db.session() as session:
            user = accounts.find_user(session, email)
            return accounts.issue_token(session, user, kind="login", name="e2e",
                                        ttl=accounts.LOGIN_LINK_TTL)

    def session_client(self) -> httpx.Client:
        """An httpx client holding a browser session cookie (as a browser would)."""
        with self.runtime.db.session() as session:
            user = accounts.find_user(session, ADMIN_EMAIL)
            token = accounts.issue_token(session, user, kind="session", name="e2e",
                                         ttl=accounts.SESSION_TTL)
        client = httpx.Client(base_url=self.base_url, trust_env=False, timeout=30,
                              cookies={SESSION_COOKIE: token})
        client.headers["X-Test-Csrf"] = csrf_token_for(token)
        return client


@pytest.fixture
def server(runtime: Runtime) -> Iterator[WebServer]:
    app = create_app(runtime)
    link = first_start(runtime)
    assert link is not None
    first_token = parse_qs(urlsplit(link).query)["token"][0]
    token = admin_token(runtime)
    try:
        with serve_in_thread(app) as base_url, httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30,
            trust_env=False,
        ) as api:
            yield WebServer(base_url, runtime, token, api, first_login_token=first_token)
    finally:
        close_webhooks(app)
        app.state.local_segment.close()


@pytest.fixture
def source(server: WebServer) -> dict[str, Any]:
    return server.create_source("Website")


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    return {
        "executable_path": CHROMIUM,
        "headless": True,
        "args": ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update"],
    }


@pytest.fixture(scope="session")
def browser_context_args() -> dict[str, Any]:
    return {"viewport": WIDE, "locale": "en-US", "timezone_id": "UTC"}


class PageProblems:
    """What a user would not see but a page must not do: script errors, CSP violations
    (Chromium reports them as console errors), and styles, scripts or images that fail to
    load. An answer of 4xx to a page or an htmx request is the page's business, not this."""

    ASSET_TYPES = frozenset({"stylesheet", "script", "image", "font"})

    def __init__(self, page: Page) -> None:
        self.found: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.found.append(f"script error: {error}"))
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.found.append(f"console: {message.text} at {message.location}")

    def _response(self, response: Response) -> None:
        if response.status >= 400 and response.request.resource_type in self.ASSET_TYPES:
            self.found.append(f"{response.status} for {response.url}")

    def assert_none(self) -> None:
        assert not self.found, "the page had problems:\n" + "\n".join(self.found)


@pytest.fixture
def signed_in(page: Page, server: WebServer) -> Iterator[Page]:
    """A page signed in through a one-time login link (as printed at first start); the test
    fails on any console error, CSP violation or asset that fails to load."""
    problems = PageProblems(page)
    page.set_default_timeout(10_000)
    page.goto(server.login_link())
    yield page
    problems.assert_none()


@pytest.fixture
def narrow_page(browser: Browser, server: WebServer) -> Iterator[Page]:
    context: BrowserContext = browser.new_context(viewport=NARROW, locale="en-US",
                                                  timezone_id="UTC", is_mobile=True,
                                                  has_touch=True, device_scale_factor=2)
    page = context.new_page()
    problems = PageProblems(page)
    page.set_default_timeout(10_000)
    page.goto(server.login_link())
    yield page
    context.close()
    problems.assert_none()


def screenshot(page: Page, name: str, *, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page,
                    animations="disabled", caret="hide")
