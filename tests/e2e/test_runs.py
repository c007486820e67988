"""Resources > Runs: the latest runs with their counts, and a run with its record errors."""

from __future__ import annotations

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


def finished_run(server: WebServer, source: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A CSV flow of 50 orders into the built-in Segment, one of them without a customer."""
    server.new_connection("Segment - shop", source["write_key"])
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    rows = orders(50)
    rows[6]["customer_id"] = ""  # line 8 of the file: no userId
    doc = track_flow("Orders to Segment", write_csv(tmp_path / "orders.csv", rows),
                     "Segment - shop")
    flow = server.api.post("/api/v1/flows", json=doc).json()
    started = server.api.post(f"/api/v1/flows/{flow['id']}/runs")
    assert started.status_code == 202, started.text
    return wait_for_run(server, started.json()["id"])


@pytest.mark.usefixtures("workers")
def test_runs_list_and_a_run_with_its_errors(signed_in: Page, server: WebServer,
                                            source: dict[str, Any],
                                            tmp_path: Path) -> None:
    page = signed_in
    page.goto(f"{server.base_url}/runs")
    expect(page.get_by_role("heading", name="No runs yet")).to_be_visible()

    run = finished_run(server, source, tmp_path)
    assert run["status"] == "completed_with_errors", run

    page.get_by_role("button", name="Resources").click()
    page.locator("#menu-runs").click()
    expect(page).to_have_url(f"{server.base_url}/runs")
    line = page.locator(f"#run-{run['id']}")
    expect(line).to_contain_text("Orders to Segment")
    expect(line).to_contain_text("completed with errors")
    expect(line.locator("td[data-label]")).to_have_text(
        ["completed with errors", run["started_at"][:19].replace("T", " "),
         f"{run['duration_seconds']:.1f} s", "100%", "50", "49", "1", "0"])

    line.get_by_role("link", name="Orders to Segment", exact=True).click()
    expect(page.get_by_role("heading", name="Run of Orders to Segment")).to_be_visible()
    expect(page.locator("#count-exported")).to_have_text("50")
    expect(page.locator("#count-sent")).to_have_text("49")
    expect(page.locator("#count-failed")).to_have_text("1")
    expect(page.locator(".run-progress")).to_contain_text("100% of the input read")
    expect(page.locator("#count-rate")).to_contain_text("events/s")
    error = page.locator("#run-errors .error-card")
    expect(error).to_have_count(1)
    expect(error.locator(".error-ref")).to_have_text("line 8")
    expect(error).to_contain_text("map")
    expect(error).to_contain_text("userId")
    # a finished run does not poll
    expect(page.locator("#run-status")).not_to_have_attribute("hx-trigger", "every 2s")
    screenshot(page, "run")

    # what the page polls while a run goes on: the status block alone
    with server.session_client() as client:
        block = client.get(f"/runs/{run['id']}",
                           headers={"HX-Request": "true", "HX-Target": "run-status"}).text
        listing = client.get("/runs").text
    assert block.startswith('<section id="run-status"') and "<h1" not in block
    assert 'id="count-sent">49<' in block
    assert '<div id="run-errors" class="run-errors" hx-swap-oob="true">' in block
    assert '<div id="run-actions" class="run-actions" hx-swap-oob="true">' in block
    assert "line 8" in block

    html = page.content() + listing + block
    assert source["write_key"] not in html


def test_an_unknown_run_is_a_404_page(signed_in: Page, server: WebServer) -> None:
    response = signed_in.goto(f"{server.base_url}/runs/run_nothing")
    assert response is not None and response.status == 404
    expect(signed_in.get_by_role("heading", name="Not found")).to_be_visible()
    expect(signed_in.locator("main")).to_contain_text("No run with id 'run_nothing'")


@pytest.mark.usefixtures("workers")
def test_a_run_page_follows_a_run_until_it_ends(signed_in: Page, server: WebServer,
                                               source: dict[str, Any],
                                               tmp_path: Path) -> None:
    page = signed_in
    server.new_connection("Segment - slow", source["write_key"], concurrency_level=1)
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    rows = orders(20_000)
    rows[-1]["customer_id"] = ""  # the last line: its error is stored at the end of the run
    doc = track_flow("Many orders", write_csv(tmp_path / "orders.csv", rows), "Segment - slow")
    flow = server.api.post("/api/v1/flows", json=doc).json()
    slow = server.api.put("/sandbox/api/faults", json={"latency_ms": 400})
    assert slow.status_code == 200, slow.text
    run = server.api.post(f"/api/v1/flows/{flow['id']}/runs").json()

    page.goto(f"{server.base_url}/runs/{run['id']}")
    status = page.locator("#run-status")
    expect(status).to_have_attribute("hx-trigger", "every 2s")  # still going: it polls
    expect(status.locator(".badge")).to_have_text("running")
    expect(page.locator("#run-actions").get_by_role("button", name="Cancel run")).to_be_visible()
    expect(page.locator("#run-progress-bar")).to_be_visible()
    expect(page.locator("#run-errors")).to_contain_text("No open record errors")
    # no reload: the block refreshes itself until the run ends, then stops polling, and the
    # errors table comes along with it
    expect(status.locator(".badge")).to_have_text("completed with errors", timeout=60_000)
    expect(page.locator("#count-sent")).to_have_text("19,999")
    expect(page.locator("#run-status")).not_to_have_attribute("hx-trigger", "every 2s")
    expect(page.locator("#run-actions").get_by_role("button")).to_have_count(0)  # no Cancel
    error = page.locator("#run-errors .error-card")
    expect(error).to_have_count(1)
    expect(error.locator(".error-ref")).to_have_text("line 20001")
    expect(error).to_contain_text("userId")
    expect(page.locator("#run-errors .count")).to_have_text("1 open record error.")
