"""Plain HTTP checks (no browser): sign-in redirects, CSRF on every form, the
Content-Security-Policy, and no trace of a write key in any page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from segbridge.accounts import service as accounts
from segbridge.accounts.sessions import SESSION_COOKIE
from segbridge.runtime import ADMIN_EMAIL
from segbridge.web.rendering import SCRUBBED
from tests.e2e.conftest import WebServer
from tests.support.receivers import status_receiver
from tests.support.servers import unused_port

HTMX = {"HX-Request": "true", "HX-Target": "pane-host"}
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<[^>]+\sstyle\s*=", re.IGNORECASE)


@pytest.fixture
def browser_client(server: WebServer) -> Iterator[httpx.Client]:
    with server.session_client() as client:
        yield client


def csrf(client: httpx.Client) -> str:
    return client.headers["X-Test-Csrf"]


def form(client: httpx.Client, **fields: str) -> dict[str, str]:
    return {"csrf_token": csrf(client), "settings.region": "us", **fields}


def connection_form(client: httpx.Client, name: str, key: str, endpoint: str,
                    **extra: str) -> dict[str, str]:
    return form(client, name=name, **{"settings.write_key": key, "settings.endpoint": endpoint},
                **extra)


# ---- signing in ------------------------------------------------------------------------------

def test_pages_send_a_stranger_to_the_login_page(server: WebServer) -> None:
    with httpx.Client(base_url=server.base_url, trust_env=False) as stranger:
        for path in ("/", "/connections", "/connections/new/segment"):
            response = stranger.get(path)
            assert response.status_code == 303
            expected = "/login" if path == "/" else f"/login?next={path}"
            assert response.headers["location"] == expected
        htmx = stranger.get("/connections", headers={"HX-Request": "true"})
        assert htmx.status_code == 204 and htmx.headers["HX-Redirect"] == "/login?next=/connections"
        refused = stranger.post("/connections/new/segment", data={"name": "x"})
        assert refused.status_code == 303 and refused.headers["location"].startswith("/login")
        login = stranger.get("/login")
        assert login.status_code == 200 and 'name="password"' in login.text


def test_password_login_and_one_time_link(server: WebServer) -> None:
    with server.runtime.db.session() as session:
        accounts.set_password(session, accounts.find_user(session, ADMIN_EMAIL), "correct horse")
    with httpx.Client(base_url=server.base_url, trust_env=False) as browser:
        page = browser.get("/login", params={"next": "/connections"})
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        fields = {"csrf_token": token.group(1), "email": ADMIN_EMAIL, "next": "//evil.example"}
        wrong = browser.post("/login", data={**fields, "password": "wrong password"})
        assert wrong.status_code == 401 and "The email or password is wrong." in wrong.text
        assert "wrong password" not in wrong.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', wrong.text)
        assert token is not None
        right = browser.post("/login", data={**fields, "csrf_token": token.group(1),
                                             "password": "correct horse"})
        assert right.status_code == 303 and right.headers["location"] == "/"
        cookie = right.headers["set-cookie"].lower()
        assert f"{SESSION_COOKIE}=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
        assert browser.get("/connections").status_code == 200
    link_token = server.new_login_token()
    with httpx.Client(base_url=server.base_url, trust_env=False) as first:
        assert first.get(f"/login?token={link_token}").headers["location"] == "/"
    with httpx.Client(base_url=server.base_url, trust_env=False) as second:
        again = second.get(f"/login?token={link_token}")
        assert again.status_code == 401 and "used already or has expired" in again.text


# ---- CSRF ------------------------------------------------------------------------------------

def test_every_form_refuses_a_missing_or_wrong_csrf_token(
    server: WebServer, browser_client: httpx.Client, source: dict[str, Any]
) -> None:
    saved = server.new_connection("Saved", source["write_key"])
    posts = ["/connections/new/segment", "/connections/new/segment/test",
             f"/connections/{saved['id']}", f"/connections/{saved['id']}/test",
             f"/connections/{saved['id']}/retest", "/logout"]
    body = {"name": "Sneaky", "settings.write_key": source["write_key"],
            "settings.endpoint": server.sandbox_url}
    for path in posts:
        for token in (None, "0" * 40):
            data = body if token is None else {**body, "csrf_token": token}
            response = browser_client.post(path, data=data)
            assert response.status_code == 403, path
            assert "This form has expired" in response.text
            assert "content-security-policy" in response.headers
    names = [c["name"] for c in server.api.get("/api/v1/connections").json()]
    assert names == ["Saved"]
    assert browser_client.get("/connections").status_code == 200  # still signed in
    with httpx.Client(base_url=server.base_url, trust_env=False) as stranger:
        login = stranger.post("/login", data={"email": ADMIN_EMAIL, "password": "x" * 12})
        assert login.status_code == 403  # the login form has its own token
    header = browser_client.post("/connections/new/segment/test", data=body,
                                 headers={"X-CSRF-Token": csrf(browser_client)})
    assert header.status_code == 200  # htmx sends the token as a header


# ---- Content-Security-Policy -----------------------------------------------------------------

def test_pages_carry_a_strict_csp_and_no_inline_script(
    server: WebServer, browser_client: httpx.Client, source: dict[str, Any]
) -> None:
    saved = server.new_connection("Saved", source["write_key"])
    paths = ["/", "/connections", "/connections/new", "/connections/new/segment",
             f"/connections/{saved['id']}"]
    for path in paths:
        response = browser_client.get(path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        html = response.text
        assert not INLINE_SCRIPT.search(html), path
        assert not INLINE_HANDLER.search(html), path
        assert not INLINE_STYLE.search(html), path
        assert '"includeIndicatorStyles": false' in html
    with httpx.Client(base_url=server.base_url, trust_env=False) as stranger:
        assert "content-security-policy" in stranger.get("/login").headers
    assert browser_client.get("/static/app.js").status_code == 200


# ---- the write key never appears -------------------------------------------------------------

def test_no_trace_of_the_write_key_in_any_page(
    server: WebServer, browser_client: httpx.Client, source: dict[str, Any]
) -> None:
    key = source["write_key"]
    sandbox = server.sandbox_url
    pages: list[httpx.Response] = []
    post = browser_client.post

    # Test connection and Save (stay, close), as a page and as htmx partials.
    pages.append(post("/connections/new/segment/test", data=connection_form(
        browser_client, "Leak - test", key, sandbox)))
    pages.append(post("/connections/new/segment/test", headers=HTMX, data=connection_form(
        browser_client, "Leak - test", key, sandbox)))
    pages.append(post("/connections/new/segment", headers=HTMX, data=connection_form(
        browser_client, "Leak - one", key, sandbox, then="stay")))
    pages.append(post("/connections/new/segment", headers=HTMX, data=connection_form(
        browser_client, "Leak - two", key, sandbox, then="close")))
    created = post("/connections/new/segment", data=connection_form(
        browser_client, "Leak - three", key, sandbox, then="close"))
    assert created.status_code == 303
    pages.append(created)
    # Failed saves: a duplicate name; a test that fails (refused; 401 with an unknown key).
    pages.append(post("/connections/new/segment", data=connection_form(
        browser_client, "leak - ONE", key, sandbox)))
    pages.append(post("/connections/new/segment", headers=HTMX, data=connection_form(
        browser_client, "leak - ONE", key, sandbox)))
    refused = f"http://127.0.0.1:{unused_port()}"
    pages.append(post("/connections/new/segment", data=connection_form(
        browser_client, "Leak - refused", key, refused)))
    pages.append(post("/connections/new/segment/test", headers=HTMX, data=connection_form(
        browser_client, "Leak - refused", key, refused)))
    with status_receiver() as (receiver, answers):
        answers.tracking_status, answers.settings_status = 401, 404
        pages.append(post("/connections/new/segment", headers=HTMX, data=connection_form(
            browser_client, "Leak - 401", key, receiver)))
        pages.append(post("/connections/new/segment/test", data=connection_form(
            browser_client, "Leak - 401", key, receiver)))
    assert [p.status_code for p in pages] == [200, 200, 200, 200, 303, 422, 422, 422, 200, 422, 200]

    saved = {c["name"]: c for c in server.api.get("/api/v1/connections").json()}
    assert sorted(saved) == ["Leak - one", "Leak - three", "Leak - two"]
    one = saved["Leak - one"]["id"]
    # Editing: test, failed save (no key), save with the key.
    pages.append(post(f"/connections/{one}/test", headers=HTMX, data=connection_form(
        browser_client, "Leak - one", key, sandbox)))
    pages.append(post(f"/connections/{one}", data=connection_form(
        browser_client, "Leak - one", "", sandbox)))
    pages.append(post(f"/connections/{one}", headers=HTMX, data=connection_form(
        browser_client, "Leak - one", key, sandbox, then="stay")))
    pages.append(post(f"/connections/{one}/retest", headers={"HX-Request": "true"},
                      data=form(browser_client)))
    # Every page of a connection and of the list.
    for path in ["/", "/connections", "/connections?q=leak", "/connections?sort=tested&dir=desc",
                 "/connections/new", "/connections/new/segment", f"/connections/{one}",
                 f"/connections/{one}?saved=1", created.headers["location"]]:
        pages.append(browser_client.get(path))
    pages.append(browser_client.get(f"/connections/{one}", headers=HTMX))
    pages.append(browser_client.get("/connections?q=leak", headers={
        "HX-Request": "true", "HX-Target": "connection-table"}))

    for response in pages:
        assert key not in response.text, response.request.url
        assert SCRUBBED not in response.text, response.request.url
        assert key not in str(response.headers)
    failed = pages[7].text
    assert "The connection was not saved because its test failed" in failed
    assert 'type="password"' in failed and f'value="{key}"' not in failed
