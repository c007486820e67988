"""Your account page: API tokens (create, shown once, last use, revoke) and the password
(set, change; other sessions end), through a browser session with its CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import select

from segbridge.accounts import service as accounts
from segbridge.accounts import throttle
from segbridge.accounts.sessions import SESSION_COOKIE, csrf_token_for
from segbridge.runtime import ADMIN_EMAIL
from segbridge.storage.models import ApiToken, User
from tests.integration.conftest import Server

OLD = "old password 1234"
NEW = "new password 5678"


def new_session(server: Server) -> str:
    with server.runtime.db.session() as session:
        user = accounts.find_user(session, ADMIN_EMAIL)
        return accounts.issue_token(session, user, kind="session", name="browser",
                                    ttl=accounts.SESSION_TTL)


@contextmanager
def browser(server: Server, session_token: str | None = None) -> Iterator[httpx.Client]:
    """A client holding a browser session; ``client.headers['X-Test-Csrf']`` is its token."""
    token = session_token or new_session(server)
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30,
                      cookies={SESSION_COOKIE: token}) as client:
        client.headers["X-Test-Csrf"] = csrf_token_for(token)
        yield client


def post(client: httpx.Client, path: str, **fields: str) -> httpx.Response:
    return client.post(path, data={"csrf_token": client.headers["X-Test-Csrf"], **fields})


def set_password(server: Server, password: str) -> None:
    with server.runtime.db.session() as session:
        accounts.set_password(session, accounts.find_user(session, ADMIN_EMAIL), password)


def api_login(server: Server, password: str) -> int:
    with httpx.Client(base_url=server.base_url, trust_env=False) as client:
        return client.post("/api/v1/auth/login",
                           json={"email": ADMIN_EMAIL, "password": password}).status_code


def row_of(page: str, name: str) -> str:
    match = re.search(r'<tr id="token-[^"]+">\s*<th scope="row">' + re.escape(name)
                      + r"</th>.*?</tr>", page, re.DOTALL)
    assert match is not None, f"no row for {name}"
    return match.group(0)


def test_changing_the_password_refuses_the_old_one_and_ends_other_sessions(
    server: Server,
) -> None:
    set_password(server, OLD)
    other_session = new_session(server)
    with browser(server) as me:
        page = me.get("/account")
        assert page.status_code == 200 and "Change password" in page.text
        wrong = post(me, "/account/password", current_password="not it",
                     new_password=NEW, new_password_again=NEW)
        assert wrong.status_code == 422
        assert "Enter your current password; it did not match." in wrong.text
        typo = post(me, "/account/password", current_password=OLD,
                    new_password=NEW, new_password_again=NEW + "x")
        assert typo.status_code == 422 and "Enter the same new password twice." in typo.text
        short = post(me, "/account/password", current_password=OLD,
                     new_password="short", new_password_again="short")
        assert short.status_code == 422 and "Use at least 10 characters." in short.text
        assert api_login(server, OLD) == 200  # nothing changed so far

        saved = post(me, "/account/password", current_password=OLD,
                     new_password=NEW, new_password_again=NEW)
        assert saved.status_code == 303
        assert saved.headers["location"] == "/account?done=password"
        assert "Your password was saved" in me.get(saved.headers["location"]).text  # still in
    assert api_login(server, OLD) == 401
    assert api_login(server, NEW) == 200
    with browser(server, other_session) as elsewhere:
        assert elsewhere.get("/account").status_code == 303  # signed out: to the login page


def test_guessing_the_current_password_is_throttled_like_a_sign_in(
    server: Server, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(throttle, "FIRST_DELAY_SECONDS", 60.0)  # holds on a slow machine too
    set_password(server, OLD)
    with browser(server) as me:
        for n in range(5):
            wrong = post(me, "/account/password", current_password=f"guess {n}",
                         new_password=NEW, new_password_again=NEW)
            assert "it did not match" in wrong.text
        blocked = post(me, "/account/password", current_password=OLD,
                       new_password=NEW, new_password_again=NEW)
        assert blocked.status_code == 422
        assert re.search(r"Too many attempts; try again in (5\d|60) seconds\.", blocked.text)
        token = me.cookies[SESSION_COOKIE]
        api = me.put("/api/v1/me/password", headers={"X-CSRF-Token": csrf_token_for(token)},
                     json={"current_password": OLD, "new_password": NEW})
        assert api.status_code == 429 and 50 <= int(api.headers["Retry-After"]) <= 60
    assert api_login(server, OLD) == 429  # the same counter as the sign-in's
    assert api_login(server, NEW) == 429


def test_the_password_api_changes_it_and_keeps_api_tokens(server: Server) -> None:
    set_password(server, OLD)
    refused = server.api.put("/api/v1/me/password",
                             json={"current_password": "nope", "new_password": NEW})
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "current_password"
    changed = server.api.put("/api/v1/me/password",
                             json={"current_password": OLD, "new_password": NEW})
    assert changed.status_code == 204
    assert server.api.get("/api/v1/tokens").status_code == 200
    assert api_login(server, NEW) == 200


def test_a_user_who_signed_in_by_link_sets_a_password_without_a_current_one(
    server: Server,
) -> None:
    with browser(server) as me:
        page = me.get("/account")
        assert "Set a password" in page.text and "current_password" not in page.text
        saved = post(me, "/account/password", new_password=NEW, new_password_again=NEW)
        assert saved.status_code == 303
        assert "Change password" in me.get("/account").text
    assert api_login(server, NEW) == 200


def test_the_tokens_page_shows_a_new_token_once_lists_its_use_and_revokes_it(
    server: Server,
) -> None:
    with browser(server) as me:
        made = post(me, "/account/tokens", name="nightly import", expires_in_days="30")
        assert made.status_code == 201
        shown = re.search(r'id="new-token-value" type="text" readonly value="([^"]+)"',
                          made.text)
        assert shown is not None
        value = shown.group(1)
        assert "it is not shown again" in made.text

        page = me.get("/account").text
        assert value not in page
        row = row_of(page, "nightly import")
        assert row.count("UTC") == 2 and ">never<" in row  # created, expires; never used
        with httpx.Client(base_url=server.base_url, trust_env=False,
                          headers={"Authorization": f"Bearer {value}"}) as script:
            assert script.get("/api/v1/connections").status_code == 200
            assert row_of(me.get("/account").text, "nightly import").count("UTC") == 3

            token_id = re.search(r'<tr id="token-([^"]+)">', row)
            assert token_id is not None
            revoked = post(me, f"/account/tokens/{token_id.group(1)}/revoke")
            assert revoked.status_code == 303
            assert script.get("/api/v1/connections").status_code == 401
        after = me.get(revoked.headers["location"]).text
        assert "The token was revoked" in after
        assert '<th scope="row">nightly import</th>' not in after


def test_a_token_form_error_names_the_field_and_creates_nothing(server: Server) -> None:
    with browser(server) as me:
        refused = post(me, "/account/tokens", name="  ", expires_in_days="")
        assert refused.status_code == 422
        assert 'id="field-name-error" class="field-error">Enter a name' in refused.text
        assert "new-token-value" not in refused.text
        bad_expiry = post(me, "/account/tokens", name="x", expires_in_days="soon")
        assert bad_expiry.status_code == 422
        assert "Choose when the token expires, or Never." in bad_expiry.text
    assert [t["name"] for t in server.api.get("/api/v1/tokens").json()] == ["tests"]


def test_account_forms_need_the_sessions_csrf_token(server: Server) -> None:
    with browser(server) as me:
        forged = me.post("/account/tokens", data={"name": "forged"})
        assert forged.status_code == 403
        wrong = me.post("/account/password", data={
            "csrf_token": "x" * 40, "new_password": NEW, "new_password_again": NEW})
        assert wrong.status_code == 403
    assert [t["name"] for t in server.api.get("/api/v1/tokens").json()] == ["tests"]
    assert api_login(server, NEW) == 401


def test_another_accounts_token_cannot_be_revoked_from_the_page(server: Server) -> None:
    with server.runtime.db.session() as session:
        other = accounts.create_account(session, "Other")
        eve = accounts.create_user(session, other.id, "eve@other.example", None, role="admin")
        accounts.issue_token(session, eve, kind="api", name="eve's")
    eves = _all_tokens(server, "eve@other.example")
    with browser(server) as me:
        answer = post(me, f"/account/tokens/{eves[0]}/revoke")
        assert answer.status_code == 404 and "No API token has the id" in answer.text
    assert _all_tokens(server, "eve@other.example") == eves


def _all_tokens(server: Server, email: str) -> list[str]:
    with server.runtime.db.session() as session:
        return list(session.scalars(select(ApiToken.id).join(User, User.id == ApiToken.user_id)
                                    .where(User.email == email)))


def test_an_admin_revokes_another_users_token_from_the_page_a_member_sees_only_theirs(
    server: Server,
) -> None:
    with server.runtime.db.session() as session:
        admin = accounts.find_user(session, ADMIN_EMAIL)
        mia = accounts.create_user(session, admin.account_id, "mia@example.com", None,
                                   role="manage")
        mias_token = accounts.issue_token(session, mia, kind="api", name="mia's script")
        mias_session = accounts.issue_token(session, mia, kind="session", name="browser",
                                            ttl=accounts.SESSION_TTL)
    with browser(server, mias_session) as member:
        page = member.get("/account").text
        assert "mia&#39;s script" in page and "Other users' API tokens" not in page
    with browser(server) as me:
        page = me.get("/account").text
        assert "Other users' API tokens" in page
        found = re.search(r'<tr id="token-([^"]+)">\s*<th scope="row">mia&#39;s script</th>\s*'
                          r"<td>mia@example.com</td>", page)
        assert found is not None
        assert post(me, f"/account/tokens/{found.group(1)}/revoke").status_code == 303
    with httpx.Client(base_url=server.base_url, trust_env=False,
                      headers={"Authorization": f"Bearer {mias_token}"}) as script:
        assert script.get("/api/v1/connections").status_code == 401


def test_sign_out_other_browsers_ends_every_session_but_this_one(server: Server) -> None:
    laptop, phone = new_session(server), new_session(server)
    with browser(server) as me:
        assert "You are signed in on 2 other browsers too." in me.get("/account").text
        ended = post(me, "/account/sessions/end")
        assert ended.status_code == 303
        page = me.get(ended.headers["location"]).text
        assert "Your other browser sessions were signed out." in page
        assert "You are signed in only here." in page
    for token in (laptop, phone):
        with browser(server, token) as elsewhere:
            assert elsewhere.get("/account").status_code == 303


def test_the_top_bar_links_to_your_account(server: Server) -> None:
    with browser(server) as me:
        home = me.get("/")
        assert 'id="account-link" href="/account"' in home.text
        page = me.get("/account")
        assert 'href="/account" aria-current="page"' in page.text
