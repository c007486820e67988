"""POST /api/v1/uploads takes the file part of a multipart/form-data body (a browser form,
``curl -F file=@orders.csv``) as well as a raw body: only the file's bytes are stored, under
the part's file name, read as the body streams with the same size limit; a multipart body
with no file is a 422 that says how to send one, and leaves nothing behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segbridge.core.settings import Settings, load_settings
from segbridge.storage.models import Upload
from tests.integration.conftest import Server

LIMIT_MB = 1
MB = 1024 * 1024
ORDERS = (b"order_id,customer_id,total\r\n"
          b"1001,c-1,12.50\r\n1002,c-2,99.00\r\n1003,c-1,5.25\r\n")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return load_settings(home=tmp_path / "home", database_url=database_url,
                         http_timeout_seconds=3.0, max_upload_mb=LIMIT_MB)


def stored(server: Server) -> list[Path]:
    uploads = server.runtime.settings.home / "uploads"
    return [path for path in uploads.rglob("*") if path.is_file()] if uploads.exists() else []


def rows(server: Server) -> list[tuple[str, int]]:
    with server.runtime.db.session() as session:
        return [(upload.filename, upload.size) for upload in session.query(Upload)]


def test_a_multipart_upload_stores_the_file_alone_under_its_name(server: Server) -> None:
    response = server.api.post("/api/v1/uploads", files={"file": ("orders.csv", ORDERS,
                                                                  "text/csv")})

    assert response.status_code == 201, response.text
    assert response.json()["filename"] == "orders.csv"
    assert response.json()["size"] == len(ORDERS)
    [path] = stored(server)
    assert path.read_bytes() == ORDERS  # no boundary, no part headers
    assert rows(server) == [("orders.csv", len(ORDERS))]


def test_other_form_fields_are_dropped_and_filename_in_the_query_wins(server: Server) -> None:
    response = server.api.post("/api/v1/uploads", params={"filename": "renamed.csv"},
                               data={"note": "before the file"},
                               files={"upload": ("C:\\Users\\ana\\orders.csv", ORDERS)})

    assert response.status_code == 201, response.text
    assert response.json()["filename"] == "renamed.csv"
    assert stored(server)[0].read_bytes() == ORDERS


def test_a_browser_path_in_the_part_is_reduced_to_the_file_name(server: Server) -> None:
    response = server.api.post("/api/v1/uploads",
                               files={"file": ("C:\\Users\\ana\\orders.csv", ORDERS)})

    assert response.status_code == 201, response.text
    assert response.json()["filename"] == "orders.csv"


def test_a_large_multipart_file_streams_through_intact(server: Server) -> None:
    body = b"id,value\n" + b"".join(b"%d,%s\n" % (n, b"v" * 40) for n in range(15_000))
    assert 0.5 * MB < len(body) < LIMIT_MB * MB

    response = server.api.post("/api/v1/uploads", files={"file": ("big.csv", body)})

    assert response.status_code == 201, response.text
    assert stored(server)[0].read_bytes() == body


def test_a_multipart_file_over_the_limit_is_refused_and_nothing_kept(server: Server) -> None:
    body = b"x" * (LIMIT_MB * MB + 1)

    response = server.api.post("/api/v1/uploads", files={"file": ("big.csv", body)})

    assert response.status_code == 413, response.text
    assert "SEGBRIDGE_MAX_UPLOAD_MB" in response.json()["error"]["message"]
    assert stored(server) == [] and rows(server) == []


def test_a_chunked_multipart_file_over_the_limit_is_cut_off(server: Server) -> None:
    boundary = "segbridge-test-boundary"

    def body() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
               f"filename=\"big.csv\"\r\n\r\n").encode()
        for _ in range(LIMIT_MB * 4 + 4):
            yield b"x" * (256 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = server.api.post(
        "/api/v1/uploads", content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})

    assert response.status_code == 413, response.text
    assert stored(server) == [] and rows(server) == []


@pytest.mark.parametrize(("content", "content_type", "says"), [
    (b"--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--b--\r\n",
     "multipart/form-data; boundary=b", "no file in it"),
    (b"", "multipart/form-data; boundary=b", "no file in it"),
    (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\na,b\n",
     "multipart/form-data; boundary=b", "cut short"),
    (b"a,b\n", "multipart/form-data", "no boundary"),
    (b"--b\r\nContent-Disposition: form-data; name=\"a\"; filename=\"a.csv\"\r\n\r\n1\r\n"
     b"--b\r\nContent-Disposition: form-data; name=\"b\"; filename=\"b.csv\"\r\n\r\n2\r\n"
     b"--b--\r\n", "multipart/form-data; boundary=b", "more than one file"),
])
def test_a_multipart_body_without_one_whole_file_is_a_422_and_nothing_kept(
        server: Server, content: bytes, content_type: str, says: str) -> None:
    response = server.api.post("/api/v1/uploads", content=content,
                               headers={"Content-Type": content_type})

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert says in error["message"]
    assert error["details"][0]["field"] == "file"
    assert stored(server) == [] and rows(server) == []


@pytest.mark.parametrize("content_type", [None, "application/octet-stream", "text/csv",
                                          "application/x-www-form-urlencoded"])
def test_raw_bodies_are_stored_as_they_are(server: Server, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}

    response = server.api.post("/api/v1/uploads", params={"filename": "raw.csv"},
                               content=ORDERS, headers=headers)

    assert response.status_code == 201, response.text
    assert response.json()["filename"] == "raw.csv"
    assert stored(server)[0].read_bytes() == ORDERS


def test_a_preview_of_a_multipart_upload_reads_the_csvs_records(
        server: Server, source: dict[str, Any]) -> None:
    server.api.post("/api/v1/integrations", json={"name": "Shop"})
    connection = server.new_connection("Segment - test", source["write_key"])["name"]
    upload_id = server.api.post("/api/v1/uploads",
                                files={"file": ("orders.csv", ORDERS)}).json()["id"]
    flow = {"name": "Orders", "integration": "Shop",
            "export": {"type": "csv", "upload": upload_id, "key_field": "order_id"},
            "imports": [{"name": "Orders", "connection": connection, "call": "track",
                         "mapping": {"userId": "customer_id",
                                     "event": {"constant": "Order Completed"}}}]}

    preview = server.api.post("/api/v1/flows/new/preview", json={"flow": flow, "limit": 10})

    assert preview.status_code == 200, preview.text
    records = preview.json()["records"]
    assert [record["data"]["order_id"] for record in records] == ["1001", "1002", "1003"]
    assert all(not record["errors"] for record in records)
    assert "Content-Disposition" not in preview.text
