"""Accounts own everything; sessions, login links, CSRF."""

from __future__ import annotations

from typing import Any

import httpx

from segbridge.accounts import service as accounts
from segbridge.accounts.sessions import CSRF_HEADER, SESSION_COOKIE
from segbridge.runtime import ADMIN_EMAIL
from tests.integration.conftest import Server


def other_account_client(server: Server) -> httpx.Client:
    with server.runtime.db.session() as session:
        other = accounts.create_account(session, "Other")
        user = accounts.create_user(session, other.id, "eve@other.example", None, is_admin=True)
        token = accounts.issue_token(session, user, kind="api", name="t")
    return httpx.Client(base_url=server.base_url, trust_env=False,
                        headers={"Authorization": f"Bearer {token}"})


def test_another_accounts_connection_answers_404_never_its_data(
    server: Server, source: dict[str, Any],
) -> None:
    mine = server.new_connection("Mine", source["write_key"])
    with other_account_client(server) as eve:
        assert eve.get("/api/v1/connections").json() == []
        for method, path in [("GET", f"/api/v1/connections/{mine['id']}"),
                             ("POST", f"/api/v1/connections/{mine['id']}/test"),
                             ("GET", f"/api/v1/connections/{mine['id']}/audit"),
                             ("DELETE", f"/api/v1/connections/{mine['id']}")]:
            response = eve.request(method, path)
            assert response.status_code == 404, path
            assert "Mine" not in response.text
        # the same name is free in another account
        created = eve.post("/api/v1/connections", json={
            "name": "Mine", "application": "segment",
            "settings": server.segment_settings(source["write_key"])})
        assert created.status_code == 201
    assert server.api.get(f"/api/v1/connections/{mine['id']}").status_code == 200


def login_link_token(server: Server) -> str:
    with server.runtime.db.session() as session:
        user = accounts.find_user(session, ADMIN_EMAIL)
        return accounts.issue_token(session, user, kind="login", name="t",
                                    ttl=accounts.LOGIN_LINK_TTL)


def test_a_login_link_works_once_and_gives_an_httponly_samesite_session(server: Server) -> None:
    token = login_link_token(server)
    with httpx.Client(base_url=server.base_url, trust_env=False) as browser:
        first = browser.get(f"/login?token={token}")
        assert first.status_code == 303
        cookie = first.headers["set-cookie"]
        assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert browser.get("/api/v1/me").json()["email"] == ADMIN_EMAIL
    with httpx.Client(base_url=server.base_url, trust_env=False) as again:
        second = again.get(f"/login?token={token}")
        assert second.status_code == 401
        assert "used already or has expired" in second.text


def test_a_browser_session_needs_the_csrf_token_to_change_anything(
    server: Server, source: dict[str, Any],
) -> None:
    with server.runtime.db.session() as session:
        user = accounts.find_user(session, ADMIN_EMAIL)
        accounts.set_password(session, user, "correct horse battery")
    with httpx.Client(base_url=server.base_url, trust_env=False) as browser:
        wrong = browser.post("/api/v1/auth/login",
                             json={"email": ADMIN_EMAIL, "password": "wrong password"})
        assert wrong.status_code == 401
        login = browser.post("/api/v1/auth/login",
                             json={"email": ADMIN_EMAIL, "password": "correct horse battery"})
        csrf = login.json()["csrf_token"]
        body = {"name": "From browser", "application": "segment",
                "settings": server.segment_settings(source["write_key"])}
        refused = browser.post("/api/v1/connections", json=body)
        assert refused.status_code == 403
        assert CSRF_HEADER in refused.json()["error"]["message"]
        accepted = browser.post("/api/v1/connections", json=body, headers={CSRF_HEADER: csrf})
        assert accepted.status_code == 201
