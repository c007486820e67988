"""Mounted in the real segbridge server: its browser session (``segbridge_session``) and its
CSRF token (``csrf_token_for``) guard the sandbox's forms; the way back to segbridge; open
Debugger streams never hold the server's shutdown."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from segbridge.accounts import service as accounts
from segbridge.accounts.sessions import SESSION_COOKIE, csrf_token_for
from segbridge.assembly import create_app
from segbridge.runtime import ADMIN_EMAIL, Runtime, first_start
from segbridge.sandbox import SandboxState, Source
from tests.integration.conftest import admin_token
from tests.support.databases import sqlite_url
from tests.support.servers import serve_in_thread

from .conftest import StreamListener, serve

pytestmark = pytest.mark.integration


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    yield sqlite_url(tmp_path)  # the sandbox's side of the mount does not depend on the database


@dataclass
class Segbridge:
    url: str
    sandbox: SandboxState
    session: str
    api_token: str
    account_id: str

    def browser(self, session: str | None = None) -> httpx.Client:
        cookies = {SESSION_COOKIE: session or self.session}
        return httpx.Client(base_url=f"{self.url}/sandbox", cookies=cookies, trust_env=False)

    def source_names(self) -> list[str]:
        return [s.name for s in self.sandbox.store.list(self.account_id)]

    def new_source(self, name: str) -> Source:
        """A source of the signed-in admin's account, made directly in the store."""
        return self.sandbox.store.create(name, self.account_id)


def admin_account(runtime: Runtime) -> str:
    with runtime.db.session() as session:
        return accounts.find_user(session, ADMIN_EMAIL).account_id


def new_session(runtime: Runtime) -> str:
    with runtime.db.session() as session:
        user = accounts.find_user(session, ADMIN_EMAIL)
        return accounts.issue_token(
            session, user, kind="session", name="sandbox-tests", ttl=accounts.SESSION_TTL
        )


@pytest.fixture
def segbridge(runtime: Runtime) -> Iterator[Segbridge]:
    app = create_app(runtime)
    first_start(runtime)
    state: SandboxState = app.state.local_segment.state
    try:
        with serve_in_thread(app) as url:
            yield Segbridge(
                url, state, new_session(runtime), admin_token(runtime), admin_account(runtime)
            )
    finally:
        state.close()


def form_token(page: str) -> str:
    tokens = set(re.findall(r'name="csrf_token" value="([^"]+)"', page))
    assert len(tokens) == 1, tokens
    return tokens.pop()


def in_the_apps_layout(page: str) -> bool:
    """The page in segbridge's own layout: its top bar (the way back), the app's styles."""
    return ('<header id="topbar" class="topbar">' in page and '<a class="brand" href="/">' in page
            and "/static/app.css" in page and 'rel="icon"' in page
            and "segbridge sandbox" not in page)  # not the standalone header


def test_pages_show_the_way_back_to_segbridge(segbridge: Segbridge) -> None:
    with segbridge.browser() as browser:
        page = browser.get("/sources")
    assert page.status_code == 200
    assert in_the_apps_layout(page.text)
    assert "content-security-policy" in page.headers


def test_the_form_carries_the_segbridge_session_token(segbridge: Segbridge) -> None:
    with segbridge.browser() as browser:
        page = browser.get("/sources").text
    assert form_token(page) == csrf_token_for(segbridge.session)


def test_create_a_source_with_the_form(segbridge: Segbridge) -> None:
    with segbridge.browser() as browser:
        token = form_token(browser.get("/sources").text)
        response = browser.post("/sources", data={"name": "Made in segbridge", "csrf_token": token})
        assert response.status_code == 303
        assert response.headers["location"].startswith("/sandbox/sources?created=src_")
        assert (
            "Source “Made in segbridge” created."
            in browser.get(f"{segbridge.url}{response.headers['location']}").text
        )
    assert "Made in segbridge" in segbridge.source_names()


@pytest.mark.parametrize("token", [None, "", "0" * 40])
def test_a_form_without_the_sessions_token_is_refused(
    segbridge: Segbridge, token: str | None
) -> None:
    data = {"name": f"Forged {token!r}"}
    if token is not None:
        data["csrf_token"] = token
    with segbridge.browser() as browser:
        response = browser.post("/sources", data=data)
    assert response.status_code == 403
    assert "This form has expired" in response.text
    assert data["name"] not in segbridge.source_names()


def test_another_sessions_token_is_refused(segbridge: Segbridge, runtime: Runtime) -> None:
    other = new_session(runtime)
    with segbridge.browser() as browser:
        data = {"name": "Cross session", "csrf_token": csrf_token_for(other)}
        assert browser.post("/sources", data=data).status_code == 403
    assert "Cross session" not in segbridge.source_names()


def test_no_session_is_not_allowed(segbridge: Segbridge) -> None:
    with httpx.Client(base_url=f"{segbridge.url}/sandbox", trust_env=False) as anonymous:
        assert 'name="csrf_token"' not in anonymous.get("/sources").text
        response = anonymous.post("/sources", data={"name": "Anonymous"})
    assert response.status_code == 403
    assert "Not allowed" in response.text
    with segbridge.browser("not-a-session") as stale:
        token = csrf_token_for("not-a-session")
        assert (
            stale.post("/sources", data={"name": "Stale", "csrf_token": token}).status_code == 403
        )
    assert not {"Anonymous", "Stale"} & set(segbridge.source_names())


def test_rename_and_delete_with_the_forms(segbridge: Segbridge) -> None:
    source = segbridge.new_source("To rename")
    with segbridge.browser() as browser:
        token = form_token(browser.get("/sources").text)
        renamed = browser.post(
            f"/sources/{source.id}/rename", data={"name": "Renamed", "csrf_token": token}
        )
        assert renamed.status_code == 303
        assert segbridge.sandbox.store.get(source.id).name == "Renamed"
        assert browser.post(f"/sources/{source.id}/delete", data={}).status_code == 403
        deleted = browser.post(f"/sources/{source.id}/delete", data={"csrf_token": token})
        assert deleted.status_code == 303
        assert deleted.headers["location"] == "/sandbox/sources?deleted=1"
    assert segbridge.sandbox.store.by_write_key(source.write_key) is None


def test_an_api_token_needs_no_form_token(segbridge: Segbridge) -> None:
    headers = {"Authorization": f"Bearer {segbridge.api_token}"}
    with httpx.Client(base_url=f"{segbridge.url}/sandbox", headers=headers) as api:
        assert api.post("/sources", data={"name": "By API token"}).status_code == 303
    assert "By API token" in segbridge.source_names()


def test_the_debugger_page_takes_q(segbridge: Segbridge) -> None:
    source = segbridge.new_source("Debugged")
    with segbridge.browser() as browser:
        page = browser.get(f"/sources/{source.id}/debugger", params={"q": "segbridge-test-1"})
    assert 'data-query="segbridge-test-1"' in page.text
    assert in_the_apps_layout(page.text)
    assert '<script src="/sandbox/static/debugger.js" defer></script>' in page.text


def test_an_open_stream_does_not_hold_the_shutdown(runtime: Runtime) -> None:
    """``segbridge serve`` gives uvicorn no graceful timeout: it would wait for the stream,
    unless the server ends the streams as it starts shutting down (``LocalSegment.end_streams``
    through ``ShutdownAwareServer``, the way segbridge's server is to run it)."""
    app = create_app(runtime)
    first_start(runtime)
    state: SandboxState = app.state.local_segment.state
    source = state.store.create("Watched", admin_account(runtime))
    session = new_session(runtime)
    with serve(app, timeout_graceful_shutdown=None, lifespan="off") as url:
        listener = StreamListener(
            f"{url}/sandbox/api/sources/{source.id}/events/stream",
            cookies={SESSION_COOKIE: session},
        ).start()
        started = time.monotonic()
    assert time.monotonic() - started < 3
    assert listener.ended.wait(2)
    state.close()


def test_close_from_another_thread_ends_the_stream(segbridge: Segbridge) -> None:
    source = segbridge.new_source("Closing")
    listener = StreamListener(
        f"{segbridge.url}/sandbox/api/sources/{source.id}/events/stream",
        cookies={SESSION_COOKIE: segbridge.session},
    ).start()
    started = time.monotonic()
    segbridge.sandbox.close()  # as segbridge's serve() does, here while the server still runs
    assert time.monotonic() - started < 1
    assert listener.ended.wait(2)
    assert listener.error is None


def test_try_it_in_segbridge_loads_analytics_js_from_the_mount(segbridge: Segbridge) -> None:
    source = segbridge.new_source("Tried")
    with segbridge.browser() as browser:
        page = browser.get(f"/sources/{source.id}/try")
        assert page.status_code == 200
        assert in_the_apps_layout(page.text)
        assert f'data-cdn="{segbridge.url}/sandbox"' in page.text
        assert '<script src="/sandbox/static/try.js" defer></script>' in page.text
        library = browser.get(f"/analytics.js/v1/{source.write_key}/analytics.min.js")
        assert library.status_code == 200
        settings = browser.get(f"/v1/projects/{source.write_key}/settings").json()
    host = segbridge.url.removeprefix("http://")
    assert settings["integrations"]["Segment.io"]["apiHost"] == f"{host}/sandbox/v1"
