"""The Create connection pane in a real browser: editing, closing, borrowing, field errors,
and the keyboard alone."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, screenshot
from tests.e2e.pages import (
    expect_field_error,
    fill_connection,
    host_pane_here,
    open_advanced,
    open_create_pane,
    pane,
    row,
)
from tests.integration.web.test_pane_return import segment_on_loopback
from tests.support.receivers import Answers, status_receiver
from tests.support.servers import unused_port


def test_edit_needs_the_write_key_again(signed_in: Page, server: WebServer,
                                        source: dict[str, Any]) -> None:
    page = signed_in
    saved = server.new_connection("Segment - shop", source["write_key"])
    page.goto(f"{server.base_url}/connections")
    page.get_by_role("link", name="Segment - shop").click()
    edit = pane(page)
    expect(edit.get_by_role("heading", name="Edit connection")).to_be_visible()
    expect(edit.get_by_label("Application")).to_have_attribute("readonly", "")
    key = edit.get_by_label("Write key")
    expect(key).to_have_value("")
    expect(key).to_have_attribute("placeholder", "Re-enter the write key to save")
    expect(edit).to_contain_text("Re-enter the write key to save or test")
    expect(edit.locator("#test-result")).to_contain_text("Last test: The connection works")

    edit.get_by_label("Name").fill("Segment - online shop")
    edit.get_by_role("button", name="Save", exact=True).click()
    expect_field_error(page, "field-settings-write_key", "Enter the write key")
    expect(page.get_by_label("Write key")).to_be_focused()
    expect(pane(page).locator("#pane-banner")).to_contain_text("Not saved")
    expect(pane(page).get_by_label("Name")).to_have_value("Segment - online shop")
    screenshot(page, "08-edit-needs-write-key")

    pane(page).get_by_label("Write key").fill(source["write_key"])
    pane(page).get_by_role("button", name="Save", exact=True).click()
    expect(pane(page).locator("#pane-banner")).to_contain_text("Saved 'Segment - online shop'")
    kept = pane(page).get_by_label("Write key")
    expect(kept).to_have_value(source["write_key"])  # the browser keeps what was typed
    expect(kept).to_have_attribute("value", "")  # the server never sends it back
    expect(page).to_have_url(f"{server.base_url}/connections/{saved['id']}")
    expect(page.locator(f"#row-{saved['id']}")).to_contain_text("Segment - online shop")


def test_close_discards_only_after_confirming(signed_in: Page, server: WebServer) -> None:
    page = signed_in
    page.goto(f"{server.base_url}/connections")
    create = open_create_pane(page)
    create.get_by_role("button", name="Close", exact=True).click()  # nothing typed: closes at once
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_role("link", name="Create connection").first).to_be_focused()

    create = open_create_pane(page)
    create.get_by_label("Name").fill("Half done")
    create.get_by_role("button", name="Close", exact=True).click()
    confirm = page.get_by_role("dialog", name="Discard unsaved changes?")
    expect(confirm).to_be_visible()
    expect(confirm.get_by_role("button", name="Keep editing")).to_be_focused()
    screenshot(page, "09-discard-changes")
    confirm.get_by_role("button", name="Keep editing").click()
    expect(confirm).to_be_hidden()
    expect(pane(page).get_by_label("Name")).to_have_value("Half done")

    page.keyboard.press("Escape")  # Escape follows the same rule
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Discard changes").click()
    expect(page.locator("#pane")).to_have_count(0)
    expect(page).to_have_url(f"{server.base_url}/connections")
    expect(page.get_by_role("link", name="Create connection").first).to_be_focused()
    assert server.api.get("/api/v1/connections").json() == []


def test_borrowing_disables_the_level(signed_in: Page, server: WebServer,
                                      source: dict[str, Any]) -> None:
    page = signed_in
    lender = server.new_connection("Lender", source["write_key"], concurrency_level=5)
    page.goto(f"{server.base_url}/connections")
    open_create_pane(page)
    open_advanced(page)
    borrow = pane(page).get_by_label("Borrow concurrency from")
    level = pane(page).get_by_label("Concurrency level")
    expect(borrow.locator("option")).to_have_text(
        ["Don't borrow: use its own concurrency level", "Lender (level 5)"])
    expect(level).to_be_enabled()
    borrow.select_option(lender["id"])
    expect(level).to_be_disabled()
    expect(pane(page).locator("#level-note")).to_be_visible()
    level.scroll_into_view_if_needed()
    screenshot(page, "12-borrowing")
    borrow.select_option("")
    expect(level).to_be_enabled()
    expect(pane(page).locator("#level-note")).to_be_hidden()

    borrow.select_option(lender["id"])
    fill_connection(page, name="Borrower", write_key=source["write_key"],
                    endpoint=server.sandbox_url)
    pane(page).get_by_role("button", name="Save & close").click()
    borrower = row(page, "Borrower")
    expect(borrower).to_contain_text("borrows from Lender")
    expect(row(page, "Lender")).to_contain_text("Lends to Borrower")

    page.get_by_role("link", name="Lender", exact=True).click()  # never itself in the list
    open_advanced(page)
    options = pane(page).get_by_label("Borrow concurrency from").locator("option")
    expect(options).to_have_text(
        ["Don't borrow: use its own concurrency level", "Borrower (level 5)"])


def test_a_rate_limit_is_set_in_the_pane_and_follows_the_lender_while_borrowing(
        signed_in: Page, server: WebServer, source: dict[str, Any]) -> None:
    page = signed_in
    lender = server.new_connection("Lender", source["write_key"])
    page.goto(f"{server.base_url}/connections")
    open_create_pane(page)
    open_advanced(page)
    events = pane(page).get_by_label("Events per second")
    fill_connection(page, name="Paced", write_key=source["write_key"],
                    endpoint=server.sandbox_url)
    events.fill("0")
    pane(page).get_by_role("button", name="Save", exact=True).click()
    expect_field_error(page, "field-events_per_second", "above 0")
    assert [c["name"] for c in server.api.get("/api/v1/connections").json()] == ["Lender"]

    pane(page).get_by_label("Write key").fill(source["write_key"])
    events.fill("750")
    pane(page).get_by_label("Requests per second").fill("2.5")
    pane(page).get_by_role("button", name="Save", exact=True).click()
    expect(pane(page).locator("#pane-banner")).to_contain_text("Saved 'Paced'")
    expect(pane(page).get_by_label("Events per second")).to_have_value("750")
    paced = next(c for c in server.api.get("/api/v1/connections").json() if c["name"] == "Paced")
    assert (paced["requests_per_second"], paced["events_per_second"]) == (2.5, 750.0)

    borrow = pane(page).get_by_label("Borrow concurrency from")
    borrow.select_option(lender["id"])
    expect(pane(page).get_by_label("Events per second")).to_be_disabled()
    expect(pane(page).locator("#rate-note")).to_be_visible()
    borrow.select_option("")
    expect(pane(page).get_by_label("Events per second")).to_be_enabled()
    expect(pane(page).locator("#rate-note")).to_be_hidden()


def test_each_field_error_shows_where_it_belongs(signed_in: Page, server: WebServer,
                                                 source: dict[str, Any]) -> None:
    page = signed_in
    first = server.new_connection("First", source["write_key"])
    second = server.new_connection("Second", source["write_key"],
                                   borrow_concurrency_from=first["id"])
    page.goto(f"{server.base_url}/connections")
    create = open_create_pane(page)
    create.get_by_role("button", name="Save", exact=True).click()
    expect_field_error(page, "field-name", "Enter a name")
    expect_field_error(page, "field-settings-write_key", "Enter the write key")
    expect(page.get_by_label("Name")).to_be_focused()
    screenshot(page, "13-field-errors")

    fill_connection(page, name="first", write_key=source["write_key"],
                    endpoint=server.sandbox_url)
    pane(page).get_by_label("Concurrency level").fill("30")
    pane(page).get_by_role("button", name="Save", exact=True).click()
    expect_field_error(page, "field-name", "exists already")
    expect_field_error(page, "field-concurrency_level", "from 1 to 25")
    expect(pane(page).locator("details#advanced")).to_have_attribute("open", "")
    kept = pane(page).get_by_label("Write key")
    expect(kept).to_have_value(source["write_key"])  # kept by the browser...
    expect(kept).to_have_attribute("value", "")  # ...never echoed back by the server

    # Test connection only tests the settings: a bad endpoint shows under its field.
    pane(page).get_by_label("Write key").fill(source["write_key"])
    pane(page).get_by_label("Custom endpoint URL").fill("ftp://example.com")
    pane(page).get_by_role("button", name="Test connection").click()
    expect_field_error(page, "field-settings-endpoint", "http://")
    expect(pane(page).locator("#test-result")).to_contain_text("Fix the highlighted fields")

    # A borrowing cycle: First may not borrow from Second, which borrows from First.
    page.goto(f"{server.base_url}/connections/{first['id']}")
    open_advanced(page)
    pane(page).get_by_label("Borrow concurrency from").select_option(second["id"])
    pane(page).get_by_label("Write key").fill(source["write_key"])
    pane(page).get_by_role("button", name="Save", exact=True).click()
    expect_field_error(page, "field-borrow_concurrency_from", "cycle")


def test_keyboard_alone(signed_in: Page, server: WebServer, source: dict[str, Any]) -> None:
    page = signed_in
    keys = page.keyboard
    page.goto(f"{server.base_url}/")
    page.locator("#resources-button").focus()
    keys.press("Enter")
    expect(page.locator("#resources-menu")).to_be_visible()
    keys.press("ArrowDown")
    expect(page.locator("#menu-integrations")).to_be_focused()
    keys.press("ArrowDown")
    expect(page.locator("#menu-connections")).to_be_focused()
    keys.press("Enter")
    expect(page).to_have_url(f"{server.base_url}/connections")

    page.locator("#create-connection").focus()
    keys.press("Enter")
    expect(page.get_by_label("Search applications")).to_be_focused()
    keys.type("seg")
    expect(page.locator("#app-results li")).to_have_count(1)
    keys.press("Tab")
    expect(page.locator("#choose-segment")).to_be_focused()
    keys.press("Enter")
    expect(page.get_by_label("Name")).to_be_focused()
    keys.press("Escape")  # nothing typed: closes, focus back on the opener
    expect(page.locator("#pane")).to_have_count(0)
    expect(page.locator("#create-connection")).to_be_focused()

    keys.press("Enter")
    expect(page.get_by_label("Search applications")).to_be_focused()
    keys.press("Tab")
    keys.press("Enter")
    expect(page.get_by_label("Name")).to_be_focused()
    keys.type("Keyboard")
    keys.press("Tab")  # Application (read-only)
    keys.press("Tab")
    expect(page.get_by_label("Write key")).to_be_focused()
    keys.type(source["write_key"])
    page.locator("#advanced summary").focus()
    keys.press("Enter")
    keys.press("Tab")  # Region
    keys.press("Tab")
    expect(page.get_by_label("Custom endpoint URL")).to_be_focused()
    keys.type(server.sandbox_url)
    keys.press("Enter")  # Enter submits the form with its first button: Save
    expect(pane(page).locator("#pane-banner")).to_contain_text("Saved 'Keyboard'")
    expect(page).to_have_url(re.compile(r"/connections/con_\w+$"))  # now editing it
    expect(pane(page).get_by_role("heading", name="Edit connection")).to_be_visible()
    keys.press("Escape")
    expect(page.locator("#pane")).to_have_count(0)
    expect(row(page, "Keyboard").locator(".badge")).to_have_text("Online")


def test_a_failed_test_says_why_and_nothing_is_saved(signed_in: Page, server: WebServer) -> None:
    page = signed_in
    page.goto(f"{server.base_url}/connections")
    create = open_create_pane(page)
    with status_receiver() as (receiver, answers):
        answers.tracking_status, answers.settings_status = 401, 404
        fill_connection(page, name="Wrong key", write_key="notarealkey123", endpoint=receiver)
        create.get_by_role("button", name="Test connection").click()
        result = create.locator("#test-result")
        expect(result).to_contain_text("The connection failed")
        expect(result).to_contain_text("The write key was rejected (401)")
        expect(result).to_contain_text("Write key: not recognised (warning)")
        expect(result.get_by_role("link", name="Open the Debugger")).to_have_count(0)
        screenshot(page, "14-test-failed")
        create.get_by_role("button", name="Save & close").click()
        expect(pane(page).locator("#pane-banner")).to_contain_text(
            "The connection was not saved because its test failed")
    expect(pane(page).get_by_label("Write key")).to_have_value("notarealkey123")
    expect(pane(page).get_by_label("Write key")).to_have_attribute("value", "")
    assert server.api.get("/api/v1/connections").json() == []


def test_save_then_save_and_close_without_typing_the_key_again(
    signed_in: Page, server: WebServer, source: dict[str, Any],
) -> None:
    page = signed_in
    page.goto(f"{server.base_url}/connections")
    create = open_create_pane(page)
    fill_connection(page, name="Twice", write_key=source["write_key"],
                    endpoint=server.sandbox_url)
    create.get_by_role("button", name="Save", exact=True).click()
    expect(pane(page).locator("#pane-banner")).to_contain_text("Saved 'Twice'")
    expect(pane(page).get_by_role("heading", name="Edit connection")).to_be_visible()
    pane(page).get_by_label("Name").fill("Twice, renamed")
    pane(page).get_by_role("button", name="Save & close").click()  # the key is still there
    expect(page.locator("#pane")).to_have_count(0)
    expect(row(page, "Twice, renamed").locator(".badge")).to_have_text("Online")
    assert [c["name"] for c in server.api.get("/api/v1/connections").json()] == [
        "Twice, renamed"]


def test_a_failed_save_inside_advanced_keeps_it_open_and_the_key(
    signed_in: Page, server: WebServer, source: dict[str, Any],
) -> None:
    page = signed_in
    page.goto(f"{server.base_url}/connections")
    create = open_create_pane(page)
    nothing_there = f"http://127.0.0.1:{unused_port()}/sandbox"
    fill_connection(page, name="Unreachable", write_key=source["write_key"],
                    endpoint=nothing_there)
    create.get_by_role("button", name="Save", exact=True).click()
    expect(pane(page).locator("#pane-banner")).to_contain_text("its test failed")
    expect(pane(page).locator("details#advanced")).to_have_attribute("open", "")
    endpoint = pane(page).get_by_label("Custom endpoint URL")
    expect(endpoint).to_be_focused()
    expect(endpoint).to_have_attribute("aria-invalid", "true")
    expect(pane(page).get_by_label("Write key")).to_have_value(source["write_key"])
    screenshot(page, "15-failed-save-in-advanced")

    endpoint.fill(server.sandbox_url)  # fix only the address: the key is still typed
    pane(page).get_by_role("button", name="Save & close").click()
    expect(row(page, "Unreachable").locator(".badge")).to_have_text("Online")


def test_focus_moves_to_the_result_after_test_connection(
    signed_in: Page, server: WebServer, source: dict[str, Any],
) -> None:
    page = signed_in
    page.goto(f"{server.base_url}/connections")
    create = open_create_pane(page)
    fill_connection(page, name="Focus", write_key=source["write_key"],
                    endpoint=server.sandbox_url)
    create.get_by_role("button", name="Test connection").focus()
    page.keyboard.press("Enter")
    result = create.locator("#test-result")
    expect(result).to_contain_text("The connection works")
    expect(result).to_be_focused()
    page.keyboard.press("Tab")  # on to what the result offers: Open the Debugger
    expect(result.get_by_role("link", name="Open the Debugger")).to_be_focused()


def test_an_unknown_key_fails_against_the_local_segment(
    signed_in: Page, server: WebServer,
) -> None:
    page = signed_in
    page.goto(f"{server.base_url}/connections")
    create = open_create_pane(page)
    fill_connection(page, name="Typo", write_key="unknownunknownunknownunknown1234",
                    endpoint=server.sandbox_url)
    create.get_by_role("button", name="Test connection").click()
    result = create.locator("#test-result")
    expect(result).to_contain_text("The connection failed")
    expect(result).to_contain_text("The receiver has no source with this write key")
    expect(result).not_to_contain_text("The connection works")
    screenshot(page, "16-unknown-key-local-segment")
    create.get_by_role("button", name="Save & close").click()
    expect(pane(page).locator("#pane-banner")).to_contain_text("its test failed")
    expect(pane(page).get_by_label("Write key")).to_be_focused()
    assert server.api.get("/api/v1/connections").json() == []


def test_created_in_place_on_another_page(signed_in: Page, server: WebServer,
                                          source: dict[str, Any]) -> None:
    page = signed_in
    page.goto(f"{server.base_url}/")  # a page with no field ids of its own (the pane's are
    # field-name, ...: a host page must not use them; /account does)
    opener = host_pane_here(page, "/connections/new/segment?return_to=/%3Fstep%3D2")
    opener.click()
    create = pane(page)
    expect(create.get_by_role("heading", name="Create connection")).to_be_visible()
    expect(create.get_by_label("Name")).to_be_focused()
    expect(page.locator("#page")).to_have_js_property("inert", True)

    create.get_by_label("Name").fill("In place")
    page.keyboard.press("Escape")  # something typed: the pane's own dialog asks first
    confirm = page.get_by_role("dialog", name="Discard unsaved changes?")
    expect(confirm.get_by_role("button", name="Keep editing")).to_be_focused()
    confirm.get_by_role("button", name="Discard changes").click()
    expect(page.locator("#pane")).to_have_count(0)
    expect(opener).to_be_focused()
    expect(page).to_have_url(f"{server.base_url}/?step=2")

    opener.click()
    fill_connection(page, name="In place", write_key=source["write_key"],
                    endpoint=server.sandbox_url)
    screenshot(page, "17-created-in-place")
    pane(page).get_by_role("button", name="Save & close").click()
    expect(page).to_have_url(re.compile(r"/\?step=2&connection=con_\w+$"))
    created = server.api.get("/api/v1/connections").json()
    assert [c["name"] for c in created] == ["In place"]
    assert page.url.endswith(f"connection={created[0]['id']}")


def test_the_failed_result_at_390_px(narrow_page: Page, server: WebServer) -> None:
    page = narrow_page
    page.goto(f"{server.base_url}/connections")
    create = open_create_pane(page)
    fill_connection(page, name="Narrow", write_key="unknownunknownunknownunknown1234",
                    endpoint=server.sandbox_url)
    create.get_by_role("button", name="Test connection").click()
    result = create.locator("#test-result")
    expect(result).to_contain_text("The connection failed")
    expect(result).to_be_focused()
    box = result.bounding_box()
    assert box is not None and box["width"] <= 390
    screenshot(page, "16-unknown-key-local-segment-390")


def test_against_segment_an_unconfirmed_key_is_a_warning(
    signed_in: Page, server: WebServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = signed_in
    page.goto(f"{server.base_url}/connections")
    create = open_create_pane(page)
    with segment_on_loopback(monkeypatch, Answers()):  # api.segment.io, as it answers
        fill_connection(page, name="Segment itself", write_key="unknownunknownunknown1234",
                        endpoint=None)
        create.get_by_role("button", name="Test connection").click()
        result = create.locator("#test-result")
        expect(result).to_contain_text("Segment was reached; the write key could not be confirmed")
        expect(result).not_to_contain_text("The connection works")
        expect(result).to_contain_text("Connections > Sources > your source > Debugger")
        expect(result.locator(".result-warn")).to_have_count(1)
        screenshot(page, "18-segment-key-not-confirmed")


def test_close_of_a_pane_opened_by_its_address_goes_to_return_to(
    signed_in: Page, server: WebServer,
) -> None:
    page = signed_in
    page.goto(f"{server.base_url}/connections/new/segment?return_to=/runs")
    expect(pane(page).get_by_role("heading", name="Create connection")).to_be_visible()
    pane(page).get_by_role("button", name="Close", exact=True).click()
    expect(page).to_have_url(f"{server.base_url}/runs")
    expect(page.locator("#pane")).to_have_count(0)
