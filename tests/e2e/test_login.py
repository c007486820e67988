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
    expect(page).to_have_url(f"{server.base_url}/login?signed_out=1")
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto(f"{server.base_url}/connections")
    expect(page).to_have_url(f"{server.base_url}/login?next=/connections")


def test_signing_out_without_a_password_offers_to_set_one_first(
        signed_in: Page, server: WebServer) -> None:
    page = signed_in  # signed in with a login link: no password
    page.goto(f"{server.base_url}/connections")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You have no password yet")).to_be_visible()
    expect(page.get_by_text(f"segbridge users login-link {ADMIN_EMAIL}")).to_be_visible()
    screenshot(page, "sign-out-no-password")
    page.get_by_role("link", name="Set a password").click()
    expect(page).to_have_url(f"{server.base_url}/account#password-heading")
    page.get_by_role("textbox", name="New password (required)", exact=True).fill(
        "a long password")
    page.get_by_role("textbox", name="New password again").fill("a long password")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("button", name="Change password")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{server.base_url}/login?signed_out=1")
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    expect(page.get_by_role("heading", name="No password, or forgot it?")).to_be_visible()
    screenshot(page, "login-signed-out")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill("a long password")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.base_url}/")


def test_signing_out_anyway_says_how_to_get_a_login_link(narrow_page: Page,
                                                          server: WebServer) -> None:
    page = narrow_page
    page.goto(f"{server.base_url}/account")
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.get_by_role("button", name="Sign out anyway").click()
    expect(page).to_have_url(f"{server.base_url}/login?signed_out=1")
    expect(page.get_by_text("segbridge users login-link YOUR-EMAIL")).to_be_visible()
    screenshot(page, "login-signed-out-390")
    page.goto(server.login_link())  # the link an admin printed
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible()
