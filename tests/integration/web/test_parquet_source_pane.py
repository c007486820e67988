"""The flow builder's Add source pane offers Parquet as a file format: an uploaded file or a
server path (a file, or a folder of parts), optionally only some columns; after the save the
pane shows the first records (typed values as JSON, refs by row, a folder's by part), shows
the values again, and a column the file does not have is named in the sample's problem."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from tests.integration.conftest import Server
from tests.integration.flows.conftest import shop  # noqa: F401
from tests.integration.web.test_flow_builder import PANE, flow_doc, new_flow, post
from tests.support import builder

browser = builder.browser  # the fixture


def orders(first: int, count: int) -> pa.Table:
    ids = list(range(first, first + count))
    return pa.table({
        "order_id": pa.array(ids, pa.int64()),
        "customer_id": [f"c{i}" for i in ids],
        "total": pa.array([Decimal(i * 3) / 2 for i in ids], pa.decimal128(12, 2)),
        "created_at": pa.array([datetime(2026, 11, 1 + i, 10, tzinfo=UTC) for i in ids],
                               pa.timestamp("ms", tz="UTC")),
    })


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def parquet_form(**extra: str) -> dict[str, str]:
    """The Files form as the browser sends it with Parquet chosen (the CSV options, which a
    Parquet source does not use, at their defaults)."""
    return {"app": "files", "file_source": "upload", "export.type": "parquet",
            "export.options.delimiter": ",", "export.options.header": "true",
            "export.options.encoding": "utf-8", "export.columns": "",
            "export.key_field": "order_id", **extra}


def sample_of(pane: httpx.Response) -> str:
    return pane.text[pane.text.index('id="source-sample"'):]


def test_parquet_is_offered_and_an_uploaded_file_shows_its_records(
    server: Server, browser: httpx.Client, shop: dict[str, Any],  # noqa: F811
) -> None:
    flow_id = new_flow(browser, shop)
    choose = browser.get(f"/flows/{flow_id}/source", headers=PANE)
    assert "a JSON array or Parquet" in choose.text
    files = browser.get(f"/flows/{flow_id}/source?app=files", headers=PANE)
    assert '<option value="parquet">Parquet' in files.text
    assert ".parquet" in files.text  # the file input accepts it

    saved = post(browser, f"/flows/{flow_id}/source",
                 parquet_form(**{"export.columns": "order_id, customer_id,\ncreated_at"}),
                 files={"file": ("orders.parquet", parquet_bytes(orders(1, 3)),
                                 "application/octet-stream")}, headers=PANE)

    assert saved.status_code == 200, saved.text
    assert "Source saved." in saved.text
    export = flow_doc(server, flow_id)["export"]
    assert export["upload"].startswith("upl_")
    assert {key: value for key, value in export.items() if key != "upload"} == {
        "type": "parquet", "columns": ["order_id", "customer_id", "created_at"],
        "key_field": "order_id"}  # no reading options: a Parquet file says its own
    sample = sample_of(saved)
    assert "<td>c1</td>" in sample and "<td>c3</td>" in sample and "row 3" in sample
    assert "2026-11-02T10:00:00+00:00" in sample  # the timestamp with its zone
    assert "total" not in sample  # a column left out is not read
    again = browser.get(f"/flows/{flow_id}/source", headers=PANE)
    assert '<option value="parquet" selected>' in again.text
    assert 'value="order_id, customer_id, created_at"' in again.text
    assert "orders.parquet" in browser.get(f"/flows/{flow_id}").text


def test_a_folder_of_parts_on_the_server_is_read_in_name_order(
    server: Server, browser: httpx.Client, shop: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    folder = tmp_path / "orders"  # tmp_path is the server's allowed root
    folder.mkdir()
    pq.write_table(orders(3, 2), folder / "part-0002.parquet")
    pq.write_table(orders(1, 2), folder / "part-0001.parquet")
    (folder / "_SUCCESS").write_text("")
    flow_id = new_flow(browser, shop)

    saved = post(browser, f"/flows/{flow_id}/source",
                 parquet_form(file_source="path", **{"export.path": str(folder)}),
                 headers=PANE)

    assert saved.status_code == 200, saved.text
    assert flow_doc(server, flow_id)["export"] == {"type": "parquet", "path": str(folder),
                                                   "key_field": "order_id"}
    sample = sample_of(saved)
    assert sample.index("part-0001.parquet row 1") < sample.index("part-0002.parquet row 2")
    assert "<td>c4</td>" in sample and "<td>6</td>" in sample  # total 6.00: an int


def test_a_column_the_file_does_not_have_is_named(
    server: Server, browser: httpx.Client, shop: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    path = tmp_path / "orders.parquet"
    pq.write_table(orders(1, 2), path)
    flow_id = new_flow(browser, shop)

    saved = post(browser, f"/flows/{flow_id}/source",
                 parquet_form(file_source="path", **{"export.path": str(path),
                                                     "export.columns": "order_id, email"}),
                 headers=PANE)

    assert saved.status_code == 200, saved.text  # a draft is saved; its sample says why
    problem = sample_of(saved)
    assert "Orders.parquet has no column email; its columns are order_id, customer_id, " \
        "total, created_at. Fix export.columns." in problem
