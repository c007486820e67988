"""Resources > Connections: search, sort, re-test a row, and where each connection is used."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer
from tests.e2e.pages import row


def names(page: Page) -> list[str]:
    return page.locator("tbody th a").all_inner_texts()


def test_search_sort_and_retest(signed_in: Page, server: WebServer,
                                source: dict[str, Any]) -> None:
    page = signed_in
    alpha = server.new_connection("Alpha", source["write_key"], concurrency_level=3)
    server.new_connection("bravo", source["write_key"], borrow_concurrency_from=alpha["id"])
    server.new_connection("Charlie", source["write_key"], concurrency_level=10)
    page.goto(f"{server.base_url}/connections")
    expect(page.locator("tbody tr")).to_have_count(3)
    assert names(page) == ["Alpha", "bravo", "Charlie"]
    expect(row(page, "Alpha")).to_contain_text("Lends to bravo")
    expect(row(page, "bravo")).to_contain_text("borrows from Alpha")
    expect(row(page, "Charlie")).to_contain_text("10")

    page.get_by_label("Search connections").fill("ar")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page).to_have_url(f"{server.base_url}/connections?q=ar&sort=name&dir=asc")
    assert names(page) == ["Charlie"]
    expect(page.locator(".count")).to_have_text("1 of 3 connections")
    page.get_by_label("Search connections").fill("")
    expect(page.locator("tbody tr")).to_have_count(3)

    page.get_by_role("link", name="Name").click()
    expect(page.get_by_role("columnheader", name="Name")).to_have_attribute(
        "aria-sort", "descending")
    assert names(page) == ["Charlie", "bravo", "Alpha"]
    page.get_by_role("link", name="Concurrency").click()
    expect(page.get_by_role("columnheader", name="Concurrency")).to_have_attribute(
        "aria-sort", "ascending")
    assert names(page) == ["Alpha", "bravo", "Charlie"]  # 3, 3 (borrowed), 10

    before = server.debugger_events(source["id"])
    with page.expect_response(lambda r: r.url.endswith("/retest")) as answer:
        row(page, "Charlie").get_by_role("button", name="Test Charlie").click()
    assert answer.value.status == 200
    expect(row(page, "Charlie").locator(".badge")).to_have_text("Online")
    expect(row(page, "Charlie")).to_contain_text("just now")
    assert len(server.debugger_events(source["id"])) == len(before) + 1
