"""Your account in a real browser: set a password, make an API token (shown once), revoke it."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, screenshot


def test_set_a_password_then_make_and_revoke_a_token(signed_in: Page, server: WebServer) -> None:
    page = signed_in
    page.get_by_role("link", name="Account").click()
    expect(page).to_have_url(f"{server.base_url}/account")
    expect(page.get_by_role("heading", name="Set a password")).to_be_visible()
    page.get_by_label("New password", exact=False).first.fill("a long new password")
    page.get_by_label("New password again").fill("a long new password")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_text("Your password was saved.")).to_be_visible()
    expect(page.get_by_label("Current password")).to_be_visible()

    page.get_by_label("Name").fill("nightly import")
    page.get_by_label("Expires").select_option("30")
    page.get_by_role("button", name="Create token").click()
    shown = page.get_by_label("The new token")
    expect(shown).to_be_visible()
    token = shown.input_value()
    assert len(token) >= 40
    row = page.locator("tr", has_text="nightly import")
    expect(row).to_contain_text("never")  # not used yet
    screenshot(page, "40-account", full_page=True)

    with httpx.Client(base_url=server.base_url, trust_env=False,
                      headers={"Authorization": f"Bearer {token}"}) as script:
        assert script.get("/api/v1/connections").status_code == 200
        page.get_by_role("button", name="Revoke nightly import").click()
        expect(page.get_by_text("The token was revoked; it no longer works.")).to_be_visible()
        expect(page.locator("tr", has_text="nightly import")).to_have_count(0)
        assert script.get("/api/v1/connections").status_code == 401
    page.reload()
    expect(page.get_by_label("The new token")).to_have_count(0)
