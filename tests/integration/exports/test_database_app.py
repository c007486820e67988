"""The Database application against real servers: Test connection and each failure cause,
and the password never showing in a message, an exception, a repr or a log line."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from segbridge.apps.base import ConnectionConfig, PingResult
from segbridge.apps.database.app import DatabaseApplication
from segbridge.apps.database.export import DatabaseExport
from segbridge.core.secrets import Secret
from segbridge.exports.errors import ExportError
from tests.integration.exports.dbs import Db

APP = DatabaseApplication()
PASSWORD = "Sup3r-s3cret/pass%word"  # URL-special characters on purpose


def ping(url: str, password: str | None = None, timeout: float = 5.0) -> PingResult:
    secrets = {"password": Secret(password)} if password is not None else {}
    return APP.ping(ConnectionConfig({"url": url}, secrets), timeout=timeout)


@pytest.fixture
def mariadb_user(mariadb: Db) -> Iterator[str]:
    """A MariaDB user with a password (root has none), dropped afterwards."""
    name = f"sb_{uuid.uuid4().hex[:10]}"
    escaped = PASSWORD.replace("'", "''").replace("%", "%%")  # driver SQL: % doubled
    for host in ("localhost", "127.0.0.1"):
        mariadb.run(f"CREATE USER '{name}'@'{host}' IDENTIFIED BY '{escaped}'",
                    f"GRANT SELECT ON test.* TO '{name}'@'{host}'")
    try:
        yield name
    finally:
        for host in ("localhost", "127.0.0.1"):
            mariadb.run(f"DROP USER IF EXISTS '{name}'@'{host}'")


def test_ping_ok(db: Db) -> None:
    result = ping(db.url)
    assert result.ok, result.message
    assert result.cause is None
    assert result.latency_ms > 0
    assert result.message.startswith("Connected to ")
    assert result.endpoint == db.url


def test_ping_ok_with_the_password_injected(mariadb_user: str) -> None:
    result = ping(f"mysql+pymysql://{mariadb_user}@127.0.0.1:3306/test", PASSWORD)
    assert result.ok, result.message
    assert "MariaDB" in result.message
    assert result.endpoint == f"mysql+pymysql://{mariadb_user}@127.0.0.1:3306/test"


def test_ping_wrong_password(mariadb_user: str) -> None:
    result = ping(f"mysql+pymysql://{mariadb_user}@127.0.0.1:3306/test", "wrong-" + PASSWORD)
    assert not result.ok
    assert result.cause == "auth"
    assert "Check the user in the URL and the Password field" in result.message
    assert PASSWORD not in str(result.public())


def test_ping_unknown_postgresql_role(postgres: Db) -> None:
    result = ping("postgresql+psycopg://nobody_x@127.0.0.1:5432/test")
    assert (result.ok, result.cause) == (False, "auth")
    assert 'role "nobody_x" does not exist' in result.message


@pytest.mark.parametrize("scheme", ["postgresql+psycopg://postgres", "mysql+pymysql://root"])
def test_ping_unknown_database(scheme: str) -> None:
    port = 5432 if scheme.startswith("postgresql") else 3306
    result = ping(f"{scheme}@127.0.0.1:{port}/no_such_db_{uuid.uuid4().hex[:6]}")
    assert (result.ok, result.cause) == (False, "unknown_database"), result.message
    assert "does not exist on 127.0.0.1" in result.message


def test_ping_missing_sqlite_file(tmp_path: object) -> None:
    result = ping(f"sqlite:///{tmp_path}/missing.db")
    assert (result.ok, result.cause) == (False, "unknown_database")
    assert "does not exist" in result.message


@pytest.mark.parametrize("scheme", ["postgresql+psycopg://postgres", "mysql+pymysql://root"])
def test_ping_refused(scheme: str, free_port: int) -> None:
    result = ping(f"{scheme}@127.0.0.1:{free_port}/test")
    assert (result.ok, result.cause) == (False, "refused")
    assert f"127.0.0.1:{free_port}" in result.message


@pytest.mark.parametrize("scheme", ["postgresql+psycopg://postgres", "mysql+pymysql://root"])
def test_ping_dns(scheme: str) -> None:
    result = ping(f"{scheme}@no-such-host.invalid/test")
    assert (result.ok, result.cause) == (False, "dns")
    assert "no-such-host.invalid could not be found" in result.message


@pytest.mark.parametrize("scheme", ["postgresql+psycopg://postgres", "mysql+pymysql://root"])
def test_ping_timeout(scheme: str, silent_server: int) -> None:
    result = ping(f"{scheme}@127.0.0.1:{silent_server}/test", timeout=2)
    assert (result.ok, result.cause) == (False, "timeout"), result.message
    assert "No answer from 127.0.0.1" in result.message
    assert result.latency_ms < 10_000


def test_ping_refuses_a_bad_url() -> None:
    result = ping(f"mysql+pymysql://root:{PASSWORD}@127.0.0.1/test")
    assert (result.ok, result.cause) == (False, "config")
    assert "Password field" in result.message
    assert PASSWORD not in result.message


def test_the_password_never_leaks(mariadb_user: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"mysql+pymysql://{mariadb_user}@127.0.0.1:3306/test"
    texts: list[str] = []
    for password in (PASSWORD, "x" + PASSWORD):  # right, then wrong
        source = DatabaseExport(url, Secret(password), "SELECT * FROM no_such_table_x")
        texts.append(repr(source))
        with pytest.raises(ExportError) as caught:
            list(source.records())
        texts += [str(caught.value), repr(caught.value), str(caught.value.as_dict())]
        assert caught.value.__cause__ is None and caught.value.__suppress_context__
        texts.append(str(ping(url, password).public()))
    texts.append(caplog.text)
    assert "no_such_table_x" in texts[1]  # the right password: the query ran and failed
    assert "Access denied" in " ".join(texts)  # the wrong one: refused
    for text in texts:
        assert PASSWORD not in text
        assert "pass%word" not in text and "pass%25word" not in text
