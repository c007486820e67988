"""Uploads have a size limit (SEGBRIDGE_MAX_UPLOAD_MB): a larger file is a 413 that says what to
do, and leaves no file and no record behind; what is uploaded is readable by segbridge's user
only (files 0600, folders 0700)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from segbridge.core.settings import Settings, load_settings
from segbridge.storage.models import Upload
from tests.integration.conftest import Server

LIMIT_MB = 1
MB = 1024 * 1024


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return load_settings(home=tmp_path / "home", database_url=database_url,
                         http_timeout_seconds=3.0, max_upload_mb=LIMIT_MB)


def upload_files(server: Server) -> list[Path]:
    uploads = server.runtime.settings.home / "uploads"
    return [path for path in uploads.rglob("*") if path.is_file()] if uploads.exists() else []


def upload_rows(server: Server) -> int:
    with server.runtime.db.session() as session:
        return session.query(Upload).count()


def assert_refused(response_status: int, message: str, server: Server) -> None:
    assert response_status == 413
    assert f"larger than {LIMIT_MB} MB (SEGBRIDGE_MAX_UPLOAD_MB)" in message
    assert upload_files(server) == []
    assert upload_rows(server) == 0


def test_an_upload_larger_than_the_limit_is_refused_before_it_is_written(
        server: Server) -> None:
    body = b"a,b\n" + b"1,2\n" * (LIMIT_MB * MB // 4 + 10)  # Content-Length says it all

    response = server.api.post("/api/v1/uploads", params={"filename": "big.csv"}, content=body)

    assert_refused(response.status_code, response.json()["error"]["message"], server)
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_streamed_upload_is_cut_off_at_the_limit_and_its_partial_file_deleted(
        server: Server) -> None:
    def body() -> Iterator[bytes]:  # no Content-Length: chunked, counted as it streams
        for _ in range(LIMIT_MB * 4 + 4):
            yield b"x" * (256 * 1024)

    response = server.api.post("/api/v1/uploads", params={"filename": "big.csv"},
                               content=body())

    assert_refused(response.status_code, response.json()["error"]["message"], server)


def test_an_upload_within_the_limit_is_kept_readable_by_segbridge_only(server: Server) -> None:
    body = b"a,b\n" + b"1,2\n" * 1000

    response = server.api.post("/api/v1/uploads", params={"filename": "ok.csv"}, content=body)

    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(body)
    [path] = upload_files(server)
    assert path.read_bytes() == body
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700  # the account's folder
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700  # uploads/
    assert upload_rows(server) == 1
