"""The sources page's forms (create, rename, delete), standalone: a browser signed in with the
admin token may change sources through the forms, which carry a CSRF token; the session
cookie alone never changes anything."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import ADMIN_TOKEN, Sandbox, StreamListener

pytestmark = pytest.mark.integration


@pytest.fixture
def browser(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """A browser-like client signed in through the login form (session cookie only)."""
    with httpx.Client(base_url=sandbox.url) as client:
        assert client.post("/login", data={"token": ADMIN_TOKEN}).status_code == 303
        yield client


def csrf_of(page: str) -> str:
    tokens = set(re.findall(r'name="csrf_token" value="([0-9a-f]+)"', page))
    assert len(tokens) == 1, tokens  # one token, in every form of the page
    return tokens.pop()


def names(sandbox: Sandbox) -> list[str]:
    return [s.name for s in sandbox.state.store.list()]


def test_the_sources_page_has_a_create_form(sandbox: Sandbox, browser: httpx.Client) -> None:
    html = browser.get("/sources").text
    assert '<form method="post" action="/sources"' in html
    assert '<label for="new-source-name">Name</label>' in html
    assert '<button type="submit" class="button primary">Create source</button>' in html
    assert len(csrf_of(html)) == 64


def test_create_a_source_with_the_form(sandbox: Sandbox, browser: httpx.Client) -> None:
    token = csrf_of(browser.get("/sources").text)
    response = browser.post("/sources", data={"name": "  From the form  ", "csrf_token": token})
    assert response.status_code == 303
    [source] = [s for s in sandbox.state.store.list() if s.name == "From the form"]
    assert response.headers["location"] == f"/sources?created={source.id}#source-{source.id}"
    page = browser.get(response.headers["location"])
    assert "Source “From the form” created." in page.text
    assert f'value="{source.write_key}"' in page.text


@pytest.mark.parametrize("token", [None, "", "0" * 64, "not-hex-at-all-é"])
def test_a_form_without_the_right_token_is_refused(
    sandbox: Sandbox, browser: httpx.Client, token: str | None
) -> None:
    data = {"name": f"Forged {token!r}"}
    if token is not None:
        data["csrf_token"] = token
    response = browser.post("/sources", data=data)
    assert response.status_code == 403
    assert "This form has expired" in response.text
    assert data["name"] not in names(sandbox)


def test_a_form_without_a_session_goes_to_login(sandbox: Sandbox) -> None:
    token = csrf_of(_signed_in_page(sandbox))
    with httpx.Client(base_url=sandbox.url) as stranger:  # the token, but no session
        response = stranger.post("/sources", data={"name": "No session", "csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert "No session" not in names(sandbox)


def test_the_session_still_cannot_change_through_the_json_api(
    sandbox: Sandbox, browser: httpx.Client
) -> None:
    token = csrf_of(browser.get("/sources").text)
    response = browser.post(
        "/api/sources", json={"name": "Via API"}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 401
    assert browser.put("/api/faults", json={"drop": 1}).status_code == 401


def test_the_bearer_token_needs_no_form_token(sandbox: Sandbox) -> None:
    """Not a browser: nothing ambient to forge, as for the JSON API."""
    assert 'name="csrf_token"' not in sandbox.admin.get("/sources").text
    response = sandbox.admin.post("/sources", data={"name": "By bearer"})
    assert response.status_code == 303
    assert "By bearer" in names(sandbox)


def test_invalid_names_are_shown_on_the_form(sandbox: Sandbox, browser: httpx.Client) -> None:
    existing = sandbox.new_source()
    token = csrf_of(browser.get("/sources").text)
    for name, message in (
        ("   ", "name must not be empty"),
        (existing["name"].upper(), "already exists"),
        ("x" * 101, "at most 100 characters"),
    ):
        response = browser.post("/sources", data={"name": name, "csrf_token": token})
        assert response.status_code == 422
        assert message in response.text
        assert 'aria-invalid="true" aria-describedby="new-source-error" autofocus' in response.text
        assert f'value="{name}"' in response.text  # what was typed is kept
        assert csrf_of(response.text) == token


def test_rename_and_delete_with_the_forms(sandbox: Sandbox, browser: httpx.Client) -> None:
    source = sandbox.new_source()
    page = browser.get("/sources").text
    token = csrf_of(page)
    assert f'action="/sources/{source["id"]}/rename"' in page
    assert f'action="/sources/{source["id"]}/delete"' in page

    renamed = browser.post(
        f"/sources/{source['id']}/rename", data={"name": "Renamed here", "csrf_token": token}
    )
    assert renamed.status_code == 303
    assert sandbox.state.store.get(source["id"]).name == "Renamed here"
    assert "Source “Renamed here” renamed." in browser.get(renamed.headers["location"]).text

    forged = browser.post(f"/sources/{source['id']}/delete", data={})
    assert forged.status_code == 403
    assert sandbox.state.store.by_write_key(source["write_key"]) is not None

    stream = StreamListener(
        f"{sandbox.url}/api/sources/{source['id']}/events/stream",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    ).start()
    deleted = browser.post(f"/sources/{source['id']}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/sources?deleted=1"
    assert sandbox.state.store.by_write_key(source["write_key"]) is None
    assert stream.ended.wait(2)  # as DELETE /api/sources/{id}: its live streams end
    assert (
        browser.post(f"/sources/{source['id']}/delete", data={"csrf_token": token}).status_code
        == 404
    )


def test_rename_errors_are_shown_on_that_source(sandbox: Sandbox, browser: httpx.Client) -> None:
    first, second = sandbox.new_source(), sandbox.new_source()
    token = csrf_of(browser.get("/sources").text)
    response = browser.post(
        f"/sources/{first['id']}/rename", data={"name": second["name"], "csrf_token": token}
    )
    assert response.status_code == 422
    assert f'aria-describedby="error-{first["id"]}" autofocus' in response.text
    assert sandbox.state.store.get(first["id"]).name == first["name"]


def test_oversized_forms_are_refused(sandbox: Sandbox, browser: httpx.Client) -> None:
    token = csrf_of(browser.get("/sources").text)
    response = browser.post("/sources", data={"name": "x" * 20_000, "csrf_token": token})
    assert response.status_code == 413


def test_delete_asks_first(sandbox: Sandbox, source: dict[str, Any]) -> None:
    page = sandbox.admin.get("/sources").text
    assert 'data-confirm="Delete the source “' in page
    assert "window.confirm" in sandbox.http.get("/static/sources.js").text


def _signed_in_page(sandbox: Sandbox) -> str:
    with httpx.Client(base_url=sandbox.url) as client:
        client.post("/login", data={"token": ADMIN_TOKEN})
        return client.get("/sources").text
