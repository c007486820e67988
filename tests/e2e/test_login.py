"""Signing in with email and password in a real browser, and signing out."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from segbridge.accounts import service as accounts
from segbridge.runtime import ADMIN_EMAIL
from tests.e2e.conftest import WebServer, screenshot


def test_sign_in_with_email_and_password(page: Page, server: WebServer) -> None:
    page.set_default_timeout(10_000)
    with server.runtime.db.session() as session:
        accounts.set_password(session, accounts.find_user(session, ADMIN_EMAIL), "a long password")
    page.goto(f"{server.base_url}/connections")
    expect(page).to_have_url(f"{server.base_url}/login?next=/connections")
    expect(page.get_by_label("Email")).to_be_focused()
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("The email or password is wrong.")
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_label("Password")).to_be_focused()
    screenshot(page, "15-login")
    page.get_by_label("Password").fill("a long password")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.base_url}/connections")
    expect(page.get_by_text(ADMIN_EMAIL)).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{server.base_url}/login")
    page.goto(f"{server.base_url}/connections")
    expect(page).to_have_url(f"{server.base_url}/login?next=/connections")
