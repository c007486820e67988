"""A user's walk (issue 11, walk 2): a run with bad rows; open its errors, fix one record's
data (a typo first: it is refused next to the record), retry it and see the event in the
Local Segment, resolve another; run the flow again. And the runs pages at 390 px: every
number with its label, nothing wider than the screen."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer, screenshot
from tests.integration.flows.conftest import (
    orders,
    track_flow,
    wait_for_run,
    workers,  # noqa: F401 - the flows tests' fixture, here on the browser tests' server
    write_csv,
)


def run_with_bad_rows(server: WebServer, source: dict[str, Any], tmp_path: Path,
                      ) -> dict[str, Any]:
    """20 orders into the built-in Segment; lines 3 and 6 have no customer."""
    server.new_connection("Segment - shop", source["write_key"])
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    rows = orders(20)
    rows[1]["customer_id"] = ""
    rows[4]["customer_id"] = ""
    doc = track_flow("Orders to Segment", write_csv(tmp_path / "orders.csv", rows),
                     "Segment - shop")
    flow = server.api.post("/api/v1/flows", json=doc).json()
    started = server.api.post(f"/api/v1/flows/{flow['id']}/runs")
    assert started.status_code == 202, started.text
    run = wait_for_run(server, started.json()["id"])
    assert run["status"] == "completed_with_errors", run
    return run


def no_sideways_scroll(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than the screen"


@pytest.mark.usefixtures("workers")
def test_fix_a_record_retry_it_and_resolve_another(signed_in: Page, server: WebServer,
                                                   source: dict[str, Any],
                                                   tmp_path: Path) -> None:
    page = signed_in
    run = run_with_bad_rows(server, source, tmp_path)
    page.goto(f"{server.base_url}/runs")
    page.locator(f"#run-{run['id']}").get_by_role("link", name="Orders to Segment",
                                                   exact=True).click()
    expect(page.get_by_role("heading", name="Run of Orders to Segment")).to_be_visible()
    expect(page.get_by_role("link", name="Open the flow")).to_have_attribute(
        "href", f"/flows/{run['flow_id']}")
    expect(page.get_by_role("link", name="Local Segment Debugger")).to_have_attribute(
        "href", "/sandbox/sources")
    cards = page.locator("#run-errors .error-card")
    expect(cards).to_have_count(2)
    first, second = cards.nth(0), cards.nth(1)
    expect(first.locator(".error-ref")).to_have_text("line 3")
    expect(second.locator(".error-ref")).to_have_text("line 6")
    expect(first).to_contain_text("the field 'customer_id' is missing or empty")
    expect(first.locator(".error-facts")).to_contain_text("Stepmap")
    data = first.get_by_label("Data of line 3 (JSON; edit it, then Retry)")
    record = json.loads(data.input_value())
    assert record["customer_id"] == "" and record["order_id"] == "1"
    page.get_by_role("heading", name="Open record errors").scroll_into_view_if_needed()
    screenshot(page, "run-errors", full_page=True)

    # a typo: refused next to the record, the text kept, nothing retried
    pick = first.get_by_role("checkbox", name="line 3")
    expect(pick).not_to_be_checked()
    data.fill(data.input_value().replace('"customer_id": ""', '"customer_id": "c-fixed",'))
    expect(pick).to_be_checked()  # editing a record chooses it
    page.get_by_role("button", name="Retry").click()
    problem = page.locator("#error-list .error-card").nth(0).locator(".field-error")
    expect(problem).to_contain_text("Not valid JSON: Expecting property name")
    data = page.get_by_label("Data of line 3 (JSON; edit it, then Retry)")
    expect(data).to_be_focused()
    expect(data).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#run-problem")).to_contain_text("Nothing was retried")
    assert server.api.get(f"/api/v1/flows/{run['flow_id']}/errors").json()[0]["status"] == "open"

    data.fill(data.input_value().replace(",,", ","))
    page.get_by_role("button", name="Retry").click()
    expect(page).to_have_url(re.compile(r"/runs/run_\w+$"))
    assert not page.url.endswith(run["id"])
    expect(page.locator("main .lead")).to_contain_text(f", retry, a retry of {run['id']}.")
    expect(page.locator("#run-status .badge")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("#count-sent")).to_have_text("1")
    events = [e["raw"] for e in server.debugger_events(source["id"])
              if e["raw"].get("userId") == "c-fixed"]
    assert [e["properties"]["order_id"] for e in events] == ["1"]

    # the other one: resolve it, keyboard only, from the flow's runs
    page.get_by_role("link", name="All runs of this flow").click()
    expect(page.get_by_role("heading", name="Runs of Orders to Segment")).to_be_visible()
    remaining = page.locator("#run-errors .error-card")
    expect(remaining).to_have_count(1)
    expect(remaining.locator(".error-ref")).to_have_text("line 6")
    remaining.get_by_role("checkbox", name="line 6").focus()
    page.keyboard.press("Space")
    page.get_by_role("button", name="Resolve").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#flash")).to_have_text("Resolved 1 record error.")
    expect(page.locator("#run-errors")).to_contain_text("No open record errors.")
    assert server.api.get(f"/api/v1/flows/{run['flow_id']}/errors").json() == []

    # run it again, with fresh messageIds: the page follows it to its end
    page.get_by_label("Fresh messageIds").check()
    page.get_by_role("button", name="Run now").click()
    expect(page).to_have_url(re.compile(r"/runs/run_\w+$"))
    expect(page.locator("main .lead")).to_contain_text("with fresh messageIds")
    expect(page.locator("#run-status .badge")).to_have_text("completed with errors",
                                                            timeout=30_000)
    expect(page.locator("#count-exported")).to_have_text("20")
    expect(page.locator("#run-status")).not_to_have_attribute("hx-trigger", "every 2s")
    expect(page.locator("#run-errors .error-card")).to_have_count(2)
    expect(page.get_by_role("button", name="Retry")).to_be_visible()


@pytest.mark.usefixtures("workers")
def test_the_runs_pages_at_390_px(narrow_page: Page, server: WebServer,
                                  source: dict[str, Any], tmp_path: Path) -> None:
    page = narrow_page
    run = run_with_bad_rows(server, source, tmp_path)
    page.goto(f"{server.base_url}/runs")
    line = page.locator(f"#run-{run['id']}")
    for label, value in (("Exported", "20"), ("Sent", "18"), ("Failed", "2"),
                         ("Ignored", "0"), ("Progress", "100%")):
        cell = line.locator(f"td[data-label='{label}']")
        expect(cell).to_have_text(value)
        expect(cell).to_have_css("display", "grid")  # the label shows before the number
        before = cell.evaluate("c => getComputedStyle(c, '::before').content")
        assert before == f'"{label}"', before
    no_sideways_scroll(page)
    screenshot(page, "runs-390", full_page=True)

    page.goto(f"{server.base_url}/runs/{run['id']}")
    for key, label in (("exported", "Exported"), ("sent", "Sent"), ("failed", "Failed"),
                       ("rate", "Rate")):
        pair = page.locator(f".run-counts div:has(#count-{key})")
        expect(pair.locator("dt")).to_have_text(label)
        expect(pair.locator("dt")).to_be_visible()
    per_import = page.locator(".per-import td[data-label='Sent']")
    expect(per_import).to_have_text("18")
    expect(page.locator(".error-facts dt").first).to_be_visible()
    no_sideways_scroll(page)
    screenshot(page, "run-390", full_page=True)

    page.goto(f"{server.base_url}/flows/{run['flow_id']}/runs")
    expect(page.get_by_role("button", name="Run now")).to_be_visible()
    no_sideways_scroll(page)
