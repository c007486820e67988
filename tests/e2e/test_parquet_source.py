"""A Parquet file as a flow's source in a real browser: Add source > Files > Format Parquet,
the file uploaded and some of its columns chosen, saved into the flow; the pane shows its
first records with typed values, and the source card names the file."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from playwright.sync_api import Page, expect

from tests.e2e.conftest import WebServer
from tests.e2e.pages import pane
from tests.e2e.test_flow_builder import create_flow


def write_orders(path: Path) -> None:
    ids = [1, 2, 3]
    pq.write_table(pa.table({
        "order_id": pa.array(ids, pa.int64()),
        "customer_id": [f"c{i}" for i in ids],
        "total": pa.array([Decimal("10.50"), Decimal("0"), Decimal("7.25")],
                          pa.decimal128(12, 2)),
        "created_at": pa.array([datetime(2026, 11, i, 9, 30, tzinfo=UTC) for i in ids],
                               pa.timestamp("us", tz="UTC")),
        "note": ["left out", "of the", "columns"],
    }), path)


def test_a_parquet_upload_is_saved_as_the_flows_source(signed_in: Page, server: WebServer,
                                                       tmp_path: Path) -> None:
    page = signed_in
    assert server.api.post("/api/v1/integrations", json={"name": "Shop"}).status_code == 201
    flow_id = create_flow(page, server, "Warehouse orders")
    parquet_file = tmp_path / "orders.parquet"
    write_orders(parquet_file)

    page.get_by_role("link", name="Add source").click()
    pane(page).get_by_role("link", name=re.compile("^Files")).click()
    expect(pane(page).get_by_label("Format")).to_be_focused()
    pane(page).get_by_label("Format").select_option("parquet")
    pane(page).get_by_label("File to upload").set_input_files(str(parquet_file))
    pane(page).get_by_text("Reading options").click()
    pane(page).get_by_label("Columns (Parquet)").fill("order_id, customer_id, total, created_at")
    pane(page).get_by_label("Key field (optional)").fill("order_id")
    pane(page).get_by_role("button", name="Save source").click()

    expect(pane(page).locator("#pane-banner")).to_have_text("Source saved.")
    sample = pane(page).locator("#source-sample table")
    expect(sample.locator("tbody tr")).to_have_count(3)
    expect(sample.locator("thead th")).to_have_text(
        ["Record", "order_id", "customer_id", "total", "created_at"])
    first = sample.locator("tbody tr").first
    expect(first).to_contain_text("row 1")
    expect(first).to_contain_text("10.5")
    expect(first).to_contain_text("2026-11-01T09:30:00+00:00")
    expect(page.locator("#card-source")).to_contain_text("orders.parquet")
    expect(page.locator("#flow-missing")).to_contain_text("add a destination (import).")

    # the saved source, as the pane shows it again
    page.goto(f"{server.base_url}/flows/{flow_id}/source")
    expect(pane(page).get_by_label("Format")).to_have_value("parquet")
    expect(pane(page).get_by_label("Columns (Parquet)")).to_have_value(
        "order_id, customer_id, total, created_at")
    definition = server.api.get(f"/api/v1/flows/{flow_id}").json()["definition"]
    assert definition["export"]["type"] == "parquet"
    assert definition["export"]["columns"] == ["order_id", "customer_id", "total",
                                               "created_at"]
