"""Signing out leaves a way back in: a user with no password is asked to set one first (or
sign out anyway), and the sign-in page after signing out says how to get a login link."""

from __future__ import annotations

from html import unescape

from segbridge.runtime import ADMIN_EMAIL
from tests.integration.conftest import Server
from tests.integration.test_account_page import browser, new_session, post, set_password


def session_alive(server: Server, token: str) -> bool:
    with browser(server, token) as client:
        return client.get("/account").status_code == 200


def test_a_user_without_a_password_is_asked_to_set_one_before_signing_out(
        server: Server) -> None:
    token = new_session(server)
    with browser(server, token) as client:
        asked = post(client, "/logout")

        assert asked.status_code == 200
        assert "content-security-policy" in asked.headers
        text = unescape(asked.text)
        assert "You have no password yet" in text
        assert 'href="/account#password-heading"' in text
        assert f"segbridge users login-link {ADMIN_EMAIL}" in text
        assert 'name="anyway" value="yes"' in text
        assert session_alive(server, token)  # nothing happened yet

        anyway = post(client, "/logout", anyway="yes")

        assert anyway.status_code == 303
        assert anyway.headers["location"] == "/login?signed_out=1"
    assert not session_alive(server, token)


def test_a_user_with_a_password_signs_out_at_once(server: Server) -> None:
    set_password(server, "a long password")
    token = new_session(server)
    with browser(server, token) as client:
        response = post(client, "/logout")

    assert response.status_code == 303
    assert response.headers["location"] == "/login?signed_out=1"
    assert not session_alive(server, token)


def test_the_sign_in_page_after_signing_out_says_how_to_get_back_in(server: Server) -> None:
    with browser(server, "no session") as client:
        page = client.get("/login", params={"signed_out": "1"})
        plain = client.get("/login")

    assert page.status_code == 200
    text = unescape(page.text)
    assert "You are signed out." in text
    assert 'id="login-email"' in text and 'id="login-password"' in text
    assert "No password, or forgot it?" in text
    assert "segbridge users login-link YOUR-EMAIL" in text
    assert "does not send email" in text
    assert "You are signed out." not in plain.text
    assert "No password, or forgot it?" in unescape(plain.text)

